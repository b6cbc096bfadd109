"""The foundation every layer stands on, knowing nothing of Ceph or libvirt: sizes and the
range check (units), names and ``pool/image@snap`` specs, plans and results, secrets and
their redaction, rbdnb's directories, shared settings, bounded waiting, and the one
subprocess runner (proc)."""
