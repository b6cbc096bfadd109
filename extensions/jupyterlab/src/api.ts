// The rbdnb server extension's REST API (rbdnb/server), with Jupyter's own auth.
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface IParameter {
  name: string;
  default: string; // the source text of the default
  value: unknown; // the default as a value (None -> null)
  type: 'bool' | 'int' | 'float' | 'str' | 'list' | 'dict' | 'None';
  help: string;
}

export interface IRunbook {
  name: string;
  title: string;
  description: string;
  parameters: IParameter[];
}

export interface IRun {
  id: string;
  runbook: string;
  parameters: Record<string, unknown>;
  started: string;
  state: string; // running | ok | bad parameters | cluster unreachable | step failed | lost
  message: string;
  seconds: number | null;
  progress: { done: number; total: number; current: number | null };
  notebook: string | null;
  html: string | null;
  summary: { steps?: number; changed?: number };
}

export interface IStatus {
  reachable: boolean;
  health: string;
  message: string;
  fsid: string | null;
  conf: string | null;
  used_ratio: number;
  full: boolean;
  nearfull: boolean;
  libvirt_uri: string | null;
  libvirt_reachable: boolean;
  virtualization: string;
  level: 'ok' | 'warn' | 'error';
  stale: boolean;
  /** Every libvirt host of the fleet (empty for one host). */
  hosts: { uri: string; reachable: boolean }[];
  /** Every further site (a second cluster mirroring this one's pools). */
  sites: { name: string; conf: string; reachable: boolean; health: string }[];
}

/** An error the server explained: its one-line message. */
export class APIError extends Error {}

export async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'rbdnb', 'api', path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new APIError(`the Jupyter server did not answer: ${error}`);
  }
  const text = await response.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { message: text };
  }
  if (!response.ok) {
    throw new APIError(data?.message || `${response.status} ${response.statusText}`);
  }
  return data as T;
}

export function post<T>(path: string, body: unknown): Promise<T> {
  return request<T>(path, { method: 'POST', body: JSON.stringify(body) });
}

/** The URL that serves a file under the Jupyter root as is (for the HTML of a run). */
export function fileUrl(path: string): string {
  return URLExt.join(PageConfig.getBaseUrl(), 'files', URLExt.encodeParts(path));
}
