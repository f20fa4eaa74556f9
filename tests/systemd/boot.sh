#!/bin/sh
# Boots the host's systemd as PID 1 of the namespaces `unshare` made for
# it (see tests/src/systemd.rs, which runs this script):
#
#   unshare --pid --fork --mount --uts --ipc --net --cgroup \
#       --propagation private sh boot.sh <dir>
#
# <dir> holds `stage/`, a tree copied over the container's root (the
# binaries, the config, the units, masks), and `console`, the file that
# becomes /dev/console (systemd's boot messages). The container's root is
# an overlay of / with a tmpfs upper layer: nothing on the host changes,
# and every mount made here lives and dies with this mount namespace.
set -eu
dir=$1
layer=$dir/layer
mkdir -p "$layer"
mount -t tmpfs -o mode=0755 tmpfs "$layer"
mkdir -p "$layer/upper" "$layer/work" "$layer/root"
root=$layer/root
mount -t overlay overlay -o "lowerdir=/,upperdir=$layer/upper,workdir=$layer/work" "$root"

mount -t proc proc "$root/proc"
mount -t sysfs -o ro sysfs "$root/sys"
# We were moved into a cgroup of our own before unshare, so this cgroup2
# mount's root is that cgroup: systemd manages it as its whole tree.
mount -t tmpfs -o mode=0755 tmpfs "$root/sys/fs/cgroup"
mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"

mount -t tmpfs -o mode=0755,nosuid tmpfs "$root/dev"
for node in null zero full random urandom tty; do
  touch "$root/dev/$node"
  mount --bind "/dev/$node" "$root/dev/$node"
done
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
touch "$root/dev/console"
mount --bind "$dir/console" "$root/dev/console"

mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"

cp -a "$dir/stage/." "$root/"

cd "$root"
mkdir -p oldroot
pivot_root . oldroot
exec chroot . sh -c 'umount -l /oldroot && rmdir /oldroot; export container=baton-test; exec /lib/systemd/systemd --system </dev/console >/dev/console 2>&1'
