#!/usr/bin/env bash
# Builds the image from ./Dockerfile with buildah, no Docker engine and no
# registry: the base debian:bookworm-slim is made here with debootstrap from
# the Debian mirror apt uses, kept as a rootfs tarball and committed under
# that name into buildah's storage, where it is reused while it is there.
# Steps are cached (--layers), so a rebuild redoes only what changed; what no
# tag needs any more is pruned. Prints the time of each step and the size.
# Installs buildah and debootstrap when missing. Needs root (debootstrap,
# buildah's chroot isolation).
#
# Usage: tests/image/build.sh [TAG]      (TAG: localhost/spark-identity-webhook:test)
#   REFRESH_BASE=1      remake the base (a new debootstrap) even if cached
#
# buildah's storage is our own, vfs (works on any file system, in a container
# too, and never meets another tool's storage driver), under the cache:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/spark-identity-webhook/
#     debian-bookworm-slim-rootfs.tar.gz   the base's root file system
#     containers/storage                   buildah's images
# To use the image, give buildah the same storage, as tests/image/test_image.py does:
#   buildah --storage-driver vfs --root ~/.cache/spark-identity-webhook/containers/storage \
#           --runroot /run/spark-identity-webhook/containers push localhost/spark-identity-webhook:test docker://...
set -euo pipefail
cd "$(dirname "$0")/../.."

tag=${1:-localhost/spark-identity-webhook:test}
# Tagged so that pruning keeps the build stage's cached steps.
build_stage_tag=localhost/spark-identity-webhook-build-stage:cache
base=debian:bookworm-slim
suite=bookworm
cache=${XDG_CACHE_HOME:-$HOME/.cache}/spark-identity-webhook
rootfs_tar=$cache/debian-$suite-slim-rootfs.tar.gz
buildah=(buildah --storage-driver vfs --root "$cache/containers/storage"
         --runroot /run/spark-identity-webhook/containers)

say() { printf 'image: %s\n' "$*" >&2; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
t_all=$(now)

if [ "$(id -u)" -ne 0 ]; then
        say "needs root: debootstrap, and buildah's chroot isolation"
        exit 1
fi

. .ci/apt.sh
ensure_debs() {
        local t; t=$(now)
        apt_install image "$@"
        [ -z "$APT_INSTALLED" ] || say "installed $APT_INSTALLED in $(took "$t")"
}

# The first URI apt uses for SUITE (one-line .list and deb822 .sources
# files), else FALLBACK.
apt_uri() {
        local suite=$1 fallback=$2 uri=""
        local lists=() sources=() f
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && lists+=("$f"); done
        for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && sources+=("$f"); done
        if [ ${#sources[@]} -gt 0 ]; then
                uri=$(awk -v s="$suite" 'BEGIN { RS = ""; FS = "\n" }
                        { types = uris = suites = ""
                          for (i = 1; i <= NF; i++) {
                                  if ($i ~ /^Types:/) types = " " substr($i, 7) " "
                                  if ($i ~ /^URIs:/) uris = substr($i, 6)
                                  if ($i ~ /^Suites:/) suites = " " substr($i, 8) " " }
                          if (types ~ /[ \t]deb[ \t]/ && suites ~ ("[ \t]" s "[ \t]")) { split(uris, u, " "); print u[1]; exit } }' \
                        "${sources[@]}")
        fi
        if [ -z "$uri" ] && [ ${#lists[@]} -gt 0 ]; then
                uri=$(awk -v s="$suite" '$1 == "deb" { i = 2
                          if ($2 ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
                          if ($(i + 1) == s) { print $i; exit } }' "${lists[@]}")
        fi
        printf '%s\n' "${uri:-$fallback}"
}

# Steps of earlier builds that no tag needs any more (vfs keeps a full copy
# of the file system per step): removing an image can leave its parent
# untagged and childless, hence the loop. Only after a successful build: a
# failed one keeps its finished steps (the package installs) for the next.
prune() {
        local out
        while out=$("${buildah[@]}" rmi --prune 2>/dev/null) && [ -n "$out" ]; do :; done
}

work=""
ctr=""
cleanup() {
        if [ -n "$ctr" ]; then "${buildah[@]}" rm "$ctr" >/dev/null 2>&1 || true; fi
        if [ -n "$work" ] && [ -d "$work" ]; then
                # debootstrap mounts /proc and /sys in the target; never delete through a mount.
                { grep -o " $work/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
                rm -rf --one-file-system "$work"
        fi
}
trap cleanup EXIT

# debootstrap's minbase, made like the official slim image: no docs but the
# copyrights, no man pages, info or locales (now and in later installs), apt
# keeps no downloaded packages, no package lists, no logs.
make_rootfs() {
        local mirror security
        mirror=$(apt_uri "$suite" http://deb.debian.org/debian)
        security=$(apt_uri "$suite-security" http://deb.debian.org/debian-security)
        ensure_debs debootstrap
        mkdir -p "$cache"
        work=$(mktemp -d "$cache/rootfs.XXXXXX")
        local r=$work/rootfs t; t=$(now)
        say "debootstrap --variant=minbase $suite from $mirror"
        if ! debootstrap --variant=minbase "$suite" "$r" "$mirror" >"$work/debootstrap.log" 2>&1; then
                tail -n 20 "$work/debootstrap.log" >&2
                [ -f "$r/debootstrap/debootstrap.log" ] && tail -n 20 "$r/debootstrap/debootstrap.log" >&2
                say "debootstrap failed"
                exit 1
        fi
        say "debootstrap took $(took "$t")"

        cat >"$r/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
CFG
        cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
        printf 'Acquire::Languages "none";\n' >"$r/etc/apt/apt.conf.d/docker-no-languages"
        printf 'Apt::AutoRemove::SuggestsImportant "false";\n' >"$r/etc/apt/apt.conf.d/docker-autoremove-suggests"
        rm -f "$r/etc/apt/sources.list"
        cat >"$r/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
        find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
        rm -rf "$r"/usr/share/{groff,info,linda,locale,man}/* "$r/usr/share/lintian/overrides"/*
        rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin "$r"/var/lib/apt/lists/*
        find "$r/var/log" -type f -delete
        # The host's, copied in by debootstrap; a container gets its own.
        rm -rf "$r"/dev/*
        : >"$r/etc/resolv.conf"
        : >"$r/etc/hostname"

        t=$(now)
        tar --numeric-owner --xattrs -C "$r" -czf "$work/rootfs.tar.gz" .
        mv "$work/rootfs.tar.gz" "$rootfs_tar"
        say "cached the base rootfs: $rootfs_tar ($(du -h "$rootfs_tar" | cut -f1), packed in $(took "$t"))"
        cleanup
        work=""
}

ensure_debs buildah

if [ -n "${REFRESH_BASE:-}" ]; then
        rm -f "$rootfs_tar"
        "${buildah[@]}" rmi "$base" >/dev/null 2>&1 || true
fi
if id=$("${buildah[@]}" inspect --type image --format '{{.FromImageID}}' "$base" 2>/dev/null); then
        say "base $base: reusing ${id:0:12} from buildah's storage"
else
        [ -s "$rootfs_tar" ] || make_rootfs
        t=$(now)
        ctr=$("${buildah[@]}" from scratch)
        mnt=$("${buildah[@]}" mount "$ctr")
        tar --numeric-owner --xattrs -xzf "$rootfs_tar" -C "$mnt"
        "${buildah[@]}" umount "$ctr" >/dev/null
        "${buildah[@]}" config --os linux --arch "$(dpkg --print-architecture)" \
                --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd bash "$ctr"
        "${buildah[@]}" commit --quiet --rm "$ctr" "$base" >/dev/null
        ctr=""
        say "base $base: committed from $rootfs_tar in $(took "$t")"
fi

# The one version, meson.build's: checked against the binary in the build
# stage and written in the image's org.opencontainers.image.version label.
version=$(sed -n "s/^ *version : '\(.*\)',\$/\1/p" meson.build | head -n 1)
[ -n "$version" ] || { say "no version : '...' line in meson.build"; exit 1; }
say "version $version (meson.build)"
t=$(now)
bud=("${buildah[@]}" bud --isolation chroot --pull=false --layers --force-rm -f Dockerfile
     --build-arg "VERSION=$version")
"${bud[@]}" --target build -t "$build_stage_tag" .
"${bud[@]}" -t "$tag" .
say "built $tag in $(took "$t")"
t=$(now)
prune
say "pruned unused steps in $(took "$t"); storage: $(du -sh "$cache/containers/storage" | cut -f1)"
size=$("${buildah[@]}" images --format '{{.Size}}' "$tag" | head -n 1)
say "$tag: $size; all steps $(took "$t_all")"
