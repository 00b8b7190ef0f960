# Sourced by the scripts that install what they need (.ci/deps.sh, and the
# bench, soak, valgrind, fuzz and image steps): one way to install Debian
# packages, so that each script only says which ones.
#
#   apt_install LABEL PACKAGE...
#
# Installs those of PACKAGE... that dpkg does not have yet, with sudo when
# not root, and says so on stderr as "LABEL: installing ...". Sets
# APT_INSTALLED to what it installed ("" when nothing was missing). Returns
# apt-get's status.

apt_install() {
        local label=$1 p sudo="" missing=()
        shift
        APT_INSTALLED=""
        for p in "$@"; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
        done
        [ ${#missing[@]} -gt 0 ] || return 0
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        echo "$label: installing ${missing[*]}" >&2
        $sudo apt-get update -qq || return
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" \
                >/dev/null || return
        APT_INSTALLED=${missing[*]}
}
