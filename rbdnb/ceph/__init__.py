"""Ceph RBD through librados/librbd (and qemu-img for images): the connection (cluster),
pools, cephx users, images, snapshots, clones, import/export/copy (transfer, via staging,
journal and locks so an interrupted job never passes for done), and freeing a full cluster
(space). Knows nothing of libvirt, the sandbox or Jupyter."""
