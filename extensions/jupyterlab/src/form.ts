// The parameter form of a runbook, built from its `parameters` cell.
import { Widget } from '@lumino/widgets';

import { IParameter, IRunbook } from './api';

function shown(p: IParameter, value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (p.type === 'list' || p.type === 'dict') {
    return JSON.stringify(value);
  }
  return String(value);
}

/** Reads a field back into the JSON value the parameter's type wants. */
export function parseField(p: IParameter, raw: string, checked: boolean): unknown {
  const text = raw.trim();
  switch (p.type) {
    case 'bool':
      return checked;
    case 'int':
    case 'float': {
      const n = Number(text);
      if (text === '' || Number.isNaN(n) || (p.type === 'int' && !Number.isInteger(n))) {
        throw new Error(`${p.name}: ${JSON.stringify(raw)} is not ${p.type === 'int' ? 'an integer' : 'a number'}`);
      }
      return n;
    }
    case 'list':
    case 'dict':
      try {
        return JSON.parse(text);
      } catch {
        throw new Error(`${p.name}: ${JSON.stringify(raw)} is not a JSON ${p.type}`);
      }
    case 'None':
      // Nullable: empty means None; a JSON literal (number, list, true) is taken as such.
      if (text === '') {
        return null;
      }
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
    default:
      return raw;
  }
}

export class RunbookForm extends Widget {
  /** ``entered``: what the user typed last time (a refused run's form opens again with it). */
  constructor(readonly runbook: IRunbook, entered: Record<string, string | boolean> = {}) {
    super();
    this.addClass('rbdnb-RunbookForm');
    const intro = document.createElement('p');
    intro.className = 'rbdnb-RunbookForm-description';
    intro.textContent = runbook.description;
    this.node.appendChild(intro);
    const table = document.createElement('table');
    for (const p of runbook.parameters) {
      const row = table.insertRow();
      const label = document.createElement('label');
      label.textContent = p.name;
      label.htmlFor = `rbdnb-param-${runbook.name}-${p.name}`;
      row.insertCell().appendChild(label);
      const input = document.createElement('input');
      input.id = label.htmlFor;
      input.name = p.name;
      input.dataset.type = p.type;
      const typed = entered[p.name];
      if (p.type === 'bool') {
        input.type = 'checkbox';
        input.checked = typed !== undefined ? Boolean(typed) : Boolean(p.value);
      } else {
        input.type = p.type === 'int' || p.type === 'float' ? 'number' : 'text';
        if (p.type === 'float') {
          input.step = 'any';
        }
        input.value = typeof typed === 'string' ? typed : shown(p, p.value);
        input.placeholder = p.type === 'None' ? 'None' : '';
      }
      row.insertCell().appendChild(input);
      const help = row.insertCell();
      help.className = 'rbdnb-RunbookForm-help';
      help.textContent = p.help;
      this.inputs.set(p.name, input);
    }
    this.node.appendChild(table);
  }

  /** The parameters that differ from their defaults (what a run needs to be told). */
  getValue(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const p of this.runbook.parameters) {
      const input = this.inputs.get(p.name)!;
      const value = parseField(p, input.value, input.checked);
      if (JSON.stringify(value) !== JSON.stringify(p.value)) {
        out[p.name] = value;
      }
    }
    return out;
  }

  /** What is in the fields, as typed. */
  entered(): Record<string, string | boolean> {
    const out: Record<string, string | boolean> = {};
    for (const [name, input] of this.inputs) {
      out[name] = input.type === 'checkbox' ? input.checked : input.value;
    }
    return out;
  }

  private inputs = new Map<string, HTMLInputElement>();
}
