# Shared setup for tools/run.sh and tools/test.sh (sourced, not run).
# - installs the Debian packages the project needs when they are missing (libpng-dev, zlib1g-dev,
#   dataset-fashion-mnist), with apt-get as root or through sudo;
# - sets SWIFT_FLAGS: AVX2 + FMA when this CPU has them, plus AVX-512 where it runs at full width (see
#   docs/building.md), else nothing (portable).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v swift >/dev/null 2>&1; then
    echo "error: the Swift toolchain (swift 6.x) is not on PATH; see https://www.swift.org/install/linux/" >&2
    exit 1
fi

ijepa_missing=()
for pkg in libpng-dev zlib1g-dev dataset-fashion-mnist; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || ijepa_missing+=("$pkg")
done
if [ ${#ijepa_missing[@]} -gt 0 ]; then
    echo "installing missing system packages: ${ijepa_missing[*]}"
    ijepa_sudo=""
    [ "$(id -u)" -eq 0 ] || ijepa_sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $ijepa_sudo apt-get update -qq
    $ijepa_sudo apt-get install -y -qq --no-install-recommends "${ijepa_missing[@]}" >/dev/null
fi

SWIFT_FLAGS=()
if [ "$(uname -m)" = "x86_64" ] && grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    SWIFT_FLAGS=(-Xcc -mavx2 -Xcc -mfma)
    # AVX-512 where a 512-bit FMA is full width (Intel Xeon, AMD Zen 5): the GEMM's 6x32 tile, twice the AVX2
    # peak, the same bits (docs/building.md). Not on AMD family 25 (Zen 4), which runs it as two 256-bit halves.
    # IJEPA_SIMD=avx2 keeps the AVX2 build.
    if [ "${IJEPA_SIMD:-auto}" != "avx2" ] && grep -qw avx512f /proc/cpuinfo &&
        ! { grep -q AuthenticAMD /proc/cpuinfo && grep -qE '^cpu family[[:space:]]*: 25$' /proc/cpuinfo; }; then
        SWIFT_FLAGS+=(-Xcc -mavx512f)
    fi
fi
