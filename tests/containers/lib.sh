# shellcheck shell=bash
# Sourced by tests/containers/smoke.sh and tests/containers/fresh.sh: podman as root on
# Debian 12 with every piece of its state in one scratch folder, and the debian:bookworm-slim
# base image made offline (debootstrap from the apt mirror + podman import), since no
# container registry is reachable. Recipes and why: ../shared/notes/containers.md (runc
# instead of crun, pinned ulimits, docker image format for HEALTHCHECK, netavark +
# aardvark-dns so compose service names resolve).
#
# Networks: podman's default network is a fixed 10.88.0.0/16. On a host where that subnet is
# already routed (a bridge an earlier CNI-backed podman left behind) containers on it cannot
# reach the mirror ("Temporary failure resolving"). So builds use --network=host, and
# whatever the callers run or publish uses a network they create (podman picks a free
# subnet), none, or host; never the default network.
#
# CT_STALE_BRIDGE=1 makes this host such a host for the length of the run: a bridge
# cni-podman0 owning 10.88.0.1/16, up with no ports, as CNI leaves it (its route
# 10.88.0.0/16 is what breaks the default network; a bridge that is down installs no route
# and breaks nothing). Created before the test, removed after; a cni-podman0 that already
# exists is used as it is and never removed.
#
# Callers define step(), set CT_SCRATCH, then call ct_preflight, ct_stale_bridge_up,
# ct_install [EXTRA_PKG...], ct_podman_config, ct_base_image; and ct_teardown from their
# EXIT trap (after removing their own containers).

CT_CONFIGURED=0     # 1 once CONTAINERS_CONF points into $CT_SCRATCH: teardown may rmi/rm there
CT_BRIDGE_MADE=0    # 1 when ct_stale_bridge_up created cni-podman0 (teardown removes it)
CT_BRIDGE=cni-podman0
MIRROR=${MIRROR:-}
FQ=

ct_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
ct_df_mb() { df -Pm "$1" | awk 'NR==2 {print $4}'; }

# ct_preflight MIN_FREE_MB: root, and room in the scratch folder.
ct_preflight() {
  [ "$(id -u)" = 0 ] || { echo "needs root (podman with runc, debootstrap)"; return 2; }
  mkdir -p "$CT_SCRATCH"
  local free
  free=$(ct_df_mb "$CT_SCRATCH")
  [ "$free" -ge "$1" ] || { echo "only ${free} MB free in $CT_SCRATCH (need ~$1 MB)"; return 2; }
}

# ct_install [EXTRA_PKG...]: the Debian packages the container tests need, when missing.
# iptables: netavark sets up NAT and published ports with it; without it every container on
# a bridge network fails with "netavark: No such file or directory (os error 2)" (podman only
# suggests it). netavark + aardvark-dns: compose service names must resolve (podman falls
# back to CNI without DNS when they are missing, e.g. after --no-install-recommends).
ct_install() {
  local need=() p
  for p in podman buildah runc netavark aardvark-dns iptables debootstrap curl iproute2 "$@"; do
    ct_installed "$p" || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  [ -n "$MIRROR" ] || MIRROR=$(apt-cache policy | awk '$3=="bookworm/main" && $4=="amd64" {print $2; exit}')
  [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
}

# ct_podman_config: runc, pinned ulimits, netavark; images, containers and networks all in
# $CT_SCRATCH, so nothing depends on (or touches) what the host's podman holds.
ct_podman_config() {
  mkdir -p "$CT_SCRATCH/networks"
  cat >"$CT_SCRATCH/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]
[engine]
runtime = "runc"
[network]
network_backend = "netavark"
network_config_dir = "$CT_SCRATCH/networks"
EOF
  cat >"$CT_SCRATCH/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$CT_SCRATCH/storage"
runroot = "$CT_SCRATCH/run"
EOF
  export CONTAINERS_CONF="$CT_SCRATCH/containers.conf" CONTAINERS_STORAGE_CONF="$CT_SCRATCH/storage.conf"
  export BUILDAH_FORMAT=docker    # the OCI format would drop HEALTHCHECK
  CT_CONFIGURED=1
}

# ct_base_image: localhost/debian:bookworm-slim (debootstrapped unless already in the scratch
# store), also tagged under the fully qualified names FROM lines and the Docker API use.
ct_base_image() {
  FQ=$(sed -n 's/^ *"debian" *= *"\(.*\)"/\1/p' /etc/containers/registries.conf.d/shortnames.conf 2>/dev/null || true)
  FQ=${FQ:-docker.io/library/debian}
  if podman image exists localhost/debian:bookworm-slim; then
    step "base image: already in $CT_SCRATCH"
  else
    step "base image: debootstrap bookworm minbase from $MIRROR"
    local R="$CT_SCRATCH/rootfs" clean
    debootstrap --variant=minbase bookworm "$R" "$MIRROR" >"$CT_SCRATCH/debootstrap.log" 2>&1 \
      || { tail -20 "$CT_SCRATCH/debootstrap.log"; return 1; }
    rm -f "$R/etc/apt/sources.list"
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      cp /etc/apt/sources.list.d/debian.sources "$R/etc/apt/sources.list.d/"
    else
      cp /etc/apt/sources.list "$R/etc/apt/sources.list"
    fi
    printf 'Acquire::Check-Valid-Until "false";\nAcquire::Languages "none";\n' >"$R/etc/apt/apt.conf.d/99ci"
    # Slim it like the official image (debuerreotype --slimify, docker-clean): no docs, man
    # pages or locales, no apt caches, so the image size measured here is close to a real build.
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/groff/*' 'path-exclude /usr/share/info/*' \
      'path-exclude /usr/share/lintian/*' 'path-exclude /usr/share/linda/*' \
      'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
      >"$R/etc/dpkg/dpkg.cfg.d/docker"
    clean='rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true'
    printf '%s\n' "DPkg::Post-Invoke { \"$clean\"; };" "APT::Update::Post-Invoke { \"$clean\"; };" \
      'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' >"$R/etc/apt/apt.conf.d/docker-clean"
    chroot "$R" apt-get clean
    # ${R:?}: never let an empty variable turn these into deletions on the host.
    find "${R:?}/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "${R:?}/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "${R:?}"/usr/share/man/* "${R:?}"/usr/share/groff/* "${R:?}"/usr/share/info/* "${R:?}"/usr/share/lintian/*
    find "${R:?}/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    rm -rf "${R:?}"/var/lib/apt/lists/* "${R:?}"/var/log/apt/* "${R:?}"/var/cache/apt/*.bin "${R:?}"/tmp/*
    tar --numeric-owner -C "$R" -c . | podman import -q \
      --change 'CMD ["bash"]' \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      - localhost/debian:bookworm-slim >/dev/null
    rm -rf "${R:?}"
  fi
  local t
  for t in bookworm-slim bookworm 12-slim 12; do podman tag localhost/debian:bookworm-slim "$FQ:$t"; done
}

# ct_stale_bridge_up: with CT_STALE_BRIDGE=1, the leftover CNI bridge (see the top).
ct_stale_bridge_up() {
  [ "${CT_STALE_BRIDGE:-0}" = 1 ] || return 0
  command -v ip >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2 >/dev/null
  if ip link show "$CT_BRIDGE" >/dev/null 2>&1; then
    echo "stale bridge: $CT_BRIDGE already exists, used as it is (not removed at the end)"
  else
    ip link add "$CT_BRIDGE" type bridge
    CT_BRIDGE_MADE=1
    ip addr add 10.88.0.1/16 dev "$CT_BRIDGE"
    ip link set "$CT_BRIDGE" up
  fi
  echo "stale bridge: $(ip -br addr show "$CT_BRIDGE" | tr -s ' ')"
  echo "stale bridge: route $(ip route show 10.88.0.0/16 | head -1)"
}

# ct_stale_bridge_probe: shows (not counted) that the default network really is unusable
# here, so a pass in this mode means the scripts did not depend on it. Needs the base image.
ct_stale_bridge_probe() {
  [ "${CT_STALE_BRIDGE:-0}" = 1 ] || return 0
  if timeout 15 podman run --rm --pull=never localhost/debian:bookworm-slim \
       getent hosts deb.debian.org >/dev/null 2>&1; then
    echo "stale bridge: NOTE: the default network still resolves the mirror; this host is not broken by it"
  else
    echo "stale bridge: confirmed, a container on podman's default network cannot resolve the mirror"
  fi
}

ct_stale_bridge_down() {
  [ "$CT_BRIDGE_MADE" = 1 ] || return 0
  ip link del "$CT_BRIDGE" 2>/dev/null && CT_BRIDGE_MADE=0
}

# ct_teardown KEEP: networks, then (unless KEEP=1) images and the scratch folder, then the
# stale bridge. Only touches podman state once it lives in $CT_SCRATCH (never the host's).
ct_teardown() {
  local keep=${1:-0} n
  if [ "$CT_CONFIGURED" = 1 ]; then
    for n in $(podman network ls -q 2>/dev/null); do
      [ "$n" = podman ] || podman network rm -f "$n" >/dev/null 2>&1
    done
    if [ "$keep" = 1 ]; then
      echo "scratch kept: $CT_SCRATCH"
    else
      podman rm -af -t 0 >/dev/null 2>&1
      podman rmi -af >/dev/null 2>&1
      umount "$CT_SCRATCH/storage/overlay" 2>/dev/null   # containers/storage self-bind mount
      rm -rf "${CT_SCRATCH:?}"
    fi
  elif [ "$keep" != 1 ] && [ -n "${CT_SCRATCH:-}" ]; then
    rm -rf "${CT_SCRATCH:?}"
  fi
  ct_stale_bridge_down
}
