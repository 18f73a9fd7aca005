# Installs Open MPI when missing (libopenmpi-dev, openmpi-bin): the MPI trait's system library. Sourced by
# tools/mpi-common.sh and tools/test.sh (whose public-API step dumps symbol graphs with every trait on).
ijepa_mpi_missing=()
for pkg in libopenmpi-dev openmpi-bin; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || ijepa_mpi_missing+=("$pkg")
done
if [ ${#ijepa_mpi_missing[@]} -gt 0 ]; then
    echo "installing ${ijepa_mpi_missing[*]} (the MPI trait)"
    ijepa_sudo=""; [ "$(id -u)" -eq 0 ] || ijepa_sudo="sudo"
    $ijepa_sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $ijepa_sudo apt-get install -y -qq --no-install-recommends "${ijepa_mpi_missing[@]}" >/dev/null
fi
