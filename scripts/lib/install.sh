# Installs Debian packages that are missing; apt-get update runs only when something is missing.
ensure_debian_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing Debian packages: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# Installs a cargo subcommand from crates.io when it is missing or at another version:
# ensure_cargo_tool <crate> <version> [<binary name>].
ensure_cargo_tool() {
    local crate="$1" version="$2" binary="${3:-$1}"
    if ! "$binary" --version 2>/dev/null | grep -qF "$version"; then
        echo "installing $crate $version"
        cargo install "$crate" --version "$version" --locked --quiet
    fi
}
