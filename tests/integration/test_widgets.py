"""The widget forms: set values, click Run, check the cluster with the CLI and the Output."""
import uuid

import pytest

import rbdnb
from rbdnb import virt, widgets

POOL = "wid-pool"


@pytest.fixture(scope="module")
def pool(cluster):
    rbdnb.create_pool(cluster, POOL, 8, exist_ok=True)
    yield POOL
    rbdnb.delete_pool(cluster, POOL, confirm=True)


def text_of(output):
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                   for o in output.outputs)


def test_create_form_validates_as_you_type_and_runs_only_on_click(cluster, pool, cli):
    form = widgets.create_image_form(cluster, pool=pool)
    assert form.run_button.disabled  # no image name yet
    form.fields["name"].value = "from-form"
    form.fields["size"].value = "10Q"
    assert form.run_button.disabled and "size '10Q' is not valid" in form.status.value
    form.fields["size"].value = "64M"
    assert not form.run_button.disabled and "✓" in form.status.value
    assert "rbd --conf" in text_of(form.plan) and "create --size 67108864B" in text_of(form.plan)
    assert "from-form" not in cli("rbd", "ls", pool, json_out=True)  # typing changed nothing
    form.run_button.click()
    assert form.error is None and form.result.changed
    assert cli("rbd", "info", f"{pool}/from-form", json_out=True)["size"] == 64 * 1024**2
    assert "create image wid-pool/from-form: created" in text_of(form.output)
    form.run_button.click()  # again: unchanged
    assert not form.result.changed and "unchanged" in text_of(form.output)
    form.fields["exist_ok"].value = False
    form.run_button.click()
    assert form.error == f"image {pool}/from-form already exists"
    assert text_of(form.output).strip() == f"error: image {pool}/from-form already exists"


def test_clone_form_fans_out_with_a_progress_bar(cluster, pool, cli):
    rbdnb.create_image(cluster, f"{pool}/golden", "64M", exist_ok=True)
    rbdnb.create_snapshot(cluster, f"{pool}/golden@base", exist_ok=True)
    form = widgets.clone_form(cluster)
    form.fields["parent"].value = f"{pool}/golden@base"
    form.fields["pattern"].value = f"{pool}/vm-{{i}}"  # no format spec is fine too
    form.fields["count"].value = 12
    assert not form.run_button.disabled
    form.fields["pattern"].value = f"{pool}/vm"  # no {i}: refused while typing
    assert form.run_button.disabled and "no {i} field" in form.status.value
    form.fields["pattern"].value = f"{pool}/vm-{{i:02d}}"
    form.run_button.click()
    assert form.error is None
    assert form.bar.value == form.bar.max == 12
    kids = sorted(k["image"] for k in cli("rbd", "children", f"{pool}/golden@base", json_out=True))
    assert kids == [f"vm-{i:02d}" for i in range(1, 13)]
    assert "12 created" in text_of(form.output)


def test_attach_form_on_a_defined_vm(sandbox, cluster, pool, cli):
    run = uuid.uuid4().hex[:6]
    client, lvpool, vm = f"wid{run}", f"wid-{run}-ceph", f"rbdnb-wid-{run}"
    conn = virt.connect_libvirt(sandbox.libvirt_uri)
    rbdnb.create_user(cluster, client, [pool])
    try:
        secret = virt.ensure_secret(conn, cluster, client)
        virt.ensure_rbd_pool(conn, lvpool, pool, cluster, client, secret)
        rbdnb.create_image(cluster, f"{pool}/root", "16M", exist_ok=True)
        rbdnb.create_image(cluster, f"{pool}/data", "16M", exist_ok=True)
        virt.define_vm(conn, vm, [f"{pool}/root"])
        form = widgets.attach_form(cluster, conn, domain=vm)
        form.fields["image"].value = f"{pool}/data"
        form.fields["target"].value = 'vdb"/><x'
        assert form.run_button.disabled and "disk target" in form.status.value
        form.fields["target"].value = "vdc"
        form.run_button.click()
        assert form.error is None and form.result.changed
        assert f"{pool}/data" in virt.dump_xml(conn, vm, inactive=True)
        assert "vdc" in set(virt.list_disks(conn, vm, inactive=True).target)
    finally:
        virt.undefine_vm(conn, vm, missing_ok=True)
        virt.delete_rbd_pool(conn, lvpool)
        virt.undefine_secret(conn, secret)
        conn.close()
        rbdnb.delete_user(cluster, client, confirm=True)
