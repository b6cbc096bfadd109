import errno
import json
import pickle

import pytest

from rbdnb import errors
from rbdnb.ceph.translate import translate, translated
from rbdnb.ceph.clones import expand_names
from rbdnb.ceph.images import feature_mask, feature_names
from rbdnb.base.plan import Plan, Result
from rbdnb.ceph.qemu import rbd_filename
from rbdnb.sandbox import new_cephx_key
from rbdnb.base.secret import KEY_PATTERN, Secret, redact
from rbdnb.base.specs import ImageSpec
from rbdnb.ceph.users import rbd_caps


def test_secret_never_shows():
    key = new_cephx_key()
    secret = Secret(key, "client.libvirt")
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret,
             secret._repr_html_(), str([secret]), str({"k": secret})]
    assert all(key not in s for s in shown)
    assert repr(secret) == "Secret(client.libvirt, redacted)"
    assert secret.reveal() == key
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        json.dumps(secret)
    with pytest.raises(AttributeError):
        secret._value = "x"
    assert secret == Secret(key, "client.libvirt") and secret != Secret(new_cephx_key(), "x")
    with pytest.raises(ValueError) as err:
        Secret("not-a-key", "client.x")
    assert "not-a-key" not in str(err.value)


def test_key_pattern_and_redact():
    key = new_cephx_key()
    assert KEY_PATTERN.fullmatch(key)
    assert redact(f"key = {key}\n") == "key = [cephx key redacted]\n"


def test_plan_renders_commands_quoted_and_redacted():
    key = new_cephx_key()
    plan = Plan("create image p/a b").add("rbd", "create", "--size", "10G", "p/a b")
    plan.add("echo", key).note("a note")
    assert plan.lines == ["rbd create --size 10G 'p/a b'", "echo [cephx key redacted]"]
    md = plan._repr_markdown_()
    assert "```sh" in md and key not in md and "- a note" in md
    result = Result("create image p/x", True, "created", plan)
    assert result._repr_markdown_().startswith("**create image p/x**: created")
    assert result.status == "changed"
    long = Plan("clone")
    for i in range(100):
        long.add("rbd", "clone", "p/g@s", f"p/vm-{i}")
    shown = long.shown_lines()
    assert len(long.lines) == 100 and len(shown) == 8 and "93 more" in shown[5]
    assert shown[-1].endswith("p/vm-99")
    assert str(Result("x", False, "unchanged: exists", plan)) == "x: unchanged: exists"


class FakeRbdError(Exception):
    """Shaped like the bindings' errors: an errno attribute, raised from module rbd."""

    def __init__(self, code):
        super().__init__(f"[errno {code}] librbd said so")
        self.errno = code


FakeRbdError.__module__ = "rbd"


@pytest.mark.parametrize("code, kind", [
    (errno.ENOENT, errors.ImageNotFound), (errno.EEXIST, errors.ImageExists),
    (errno.EBUSY, errors.ImageBusy), (errno.ENOTEMPTY, errors.ImageHasSnapshots),
    (errno.EPERM, errors.PermissionDenied), (errno.EACCES, errors.PermissionDenied),
    (errno.ENOSPC, errors.ClusterFull), (errno.EDQUOT, errors.ClusterFull),
    (errno.ETIMEDOUT, errors.Timeout), (errno.EINVAL, errors.InvalidArgument),
    (errno.EIO, errors.CephError), (-errno.ENOENT, errors.ImageNotFound),
])
def test_translate_by_errno(code, kind):
    exc = translate(FakeRbdError(code), "image p/i", not_found=errors.ImageNotFound,
                    exists=errors.ImageExists)
    assert type(exc) is kind
    assert str(exc).startswith("image p/i") and "\n" not in str(exc)


def test_translated_leaves_other_errors_alone():
    with pytest.raises(errors.ImageNotFound) as err:
        with translated("image p/i", not_found=errors.ImageNotFound):
            raise FakeRbdError(errno.ENOENT)
    assert isinstance(err.value.__cause__, FakeRbdError)
    with pytest.raises(KeyError):
        with translated("image p/i"):
            raise KeyError("mine")


def test_rbd_caps_are_least_privilege():
    assert rbd_caps(["libvirt-pool"]) == {"mon": "profile rbd",
                                          "osd": "profile rbd pool=libvirt-pool",
                                          "mgr": "profile rbd pool=libvirt-pool"}
    assert rbd_caps(["a", "b"])["osd"] == "profile rbd pool=a, profile rbd pool=b"
    with pytest.raises(errors.InvalidArgument):
        rbd_caps([])


def test_feature_mask_rules():
    assert feature_names(feature_mask("layering,exclusive-lock,object-map,fast-diff")) == \
        ["layering", "exclusive-lock", "object-map", "fast-diff"]
    with pytest.raises(errors.InvalidArgument, match="needs 'exclusive-lock'"):
        feature_mask(["layering", "object-map"])
    with pytest.raises(errors.InvalidArgument, match="'striping' is not valid"):
        feature_mask(["striping"])


def test_expand_clone_names():
    parent = ImageSpec("pool", "golden", snap="base")
    specs = expand_names(parent, "vm-{i:03d}", 3, 1)
    assert [str(s) for s in specs] == ["pool/vm-001", "pool/vm-002", "pool/vm-003"]
    assert [str(s) for s in expand_names(parent, "other/vm{i}", 2, 0)] == ["other/vm0", "other/vm1"]
    assert [str(s) for s in expand_names(parent, ["a", "p2/b"], None, 1)] == ["pool/a", "p2/b"]
    with pytest.raises(errors.InvalidArgument, match="count 3 does not match"):
        expand_names(parent, ["a"], 3, 1)
    with pytest.raises(errors.InvalidArgument):
        expand_names(parent, "vm-{i}-{j}", 2, 1)


def test_rbd_filename_escapes_and_carries_no_key():
    name = rbd_filename("pool/img@snap", conffile="/etc/ce:ph/a@b=c.conf", client="libvirt",
                        keyring="/k/ring", timeout=30)
    assert name.startswith("rbd:pool/img@snap:conf=/etc/ce\\:ph/a\\@b\\=c.conf:id=libvirt:"
                           "keyring=/k/ring:")
    assert ":rados_osd_op_timeout=30" in name and not KEY_PATTERN.search(name)
