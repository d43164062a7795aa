#!/usr/bin/env bash
# Installs the Debian packages the test tiers need, only those that are missing, so a
# machine that has them all runs no apt-get at all (and no `apt-get update`).
#
# strongSwan is only ever run by the tests, one charon per network namespace (see
# tests/support/strongswan.py). A system-wide charon/ipsec service would hold UDP 500/4500 and
# /run/charon.pid in the root namespace (and a system FreeRADIUS UDP 1812/1813), so services are kept from starting during the install
# and any that Debian enabled are stopped and disabled afterwards (idempotent: a second run
# changes nothing).
set -euo pipefail

packages=(
    python3-venv
    # root test tiers: strongSwan peer, data-plane bench, NAT router, namespaces
    strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins
    strongswan-pki iperf3 nftables iproute2 procps iputils-ping
    # NAT-rebinding test: flush the router namespace's connection tracking (conntrack -F)
    conntrack
    # Recommended by libstrongswan/strongswan-libcharon, so --no-install-recommends would skip
    # them: openssl + gcm (ECP groups, AES-GCM, legacy MD4) and eap-mschapv2.
    libstrongswan-standard-plugins libcharon-extauth-plugins
    # RADIUS and EAP-TLS tests: a real FreeRADIUS per test module with its own config in a temp
    # dir (tests/support/freeradius.py), wpa_supplicant's eapol_test as an independent EAP-TLS
    # peer; the system FreeRADIUS service stays disabled (below)
    freeradius eapoltest
    # revocation tests: `openssl ocsp` as the OCSP responder, `openssl crl` as a second opinion
    openssl
    # systemd unit test: `systemd-analyze verify` of the unit `pyipsec install-service` writes
    systemd
    # save_keys tests: tshark decrypts captures with the written keys, dumpcap (wireshark-common)
    # records them; DEBIAN_FRONTEND=noninteractive answers wireshark-common's "non-superusers may
    # capture?" question with its default, no (dumpcap stays root-only)
    tshark
    # the shared store: libpq for psycopg, and PostgreSQL for the private clusters of the tests
    # (tests/support/postgres.py); the system cluster Debian creates stays stopped (below)
    libpq5 postgresql
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A Python that already has venv (e.g. pyenv's) does not need Debian's python3-venv.
if python3 -c 'import venv, ensurepip' 2>/dev/null; then
    missing=("${missing[@]/python3-venv}")
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sed '/^$/d')
if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Keep maintainer scripts from starting services (invoke-rc.d and deb-systemd-invoke both
    # honour policy-rc.d exit 101). Only install a temporary one if the machine has none.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# No system strongSwan (or iperf3 server, or FreeRADIUS) in the root namespace: stop and disable whatever
# service Debian may have set up. Each step is a no-op when already stopped/disabled.
services=(strongswan strongswan-starter ipsec iperf3 freeradius postgresql)
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    for s in "${services[@]}"; do
        if systemctl list-unit-files "$s.service" 2>/dev/null | grep -q "^$s\.service"; then
            if systemctl is-enabled --quiet "$s.service" 2>/dev/null ||
                systemctl is-active --quiet "$s.service" 2>/dev/null; then
                echo "disabling system service $s"
                systemctl disable --now "$s.service" >/dev/null 2>&1 || true
            fi
        fi
    done
else
    for s in "${services[@]}"; do
        if [[ -x /etc/init.d/$s ]]; then
            if ls /etc/rc[2-5].d/S??"$s" >/dev/null 2>&1; then
                echo "disabling init script $s"
                update-rc.d "$s" disable >/dev/null 2>&1 || true
            fi
            # sysvinit `status` exits 0 only while the daemon runs.
            if "/etc/init.d/$s" status >/dev/null 2>&1; then
                echo "stopping init script $s"
                "/etc/init.d/$s" stop >/dev/null 2>&1 || true
            fi
        fi
    done
fi
# Last resort: a charon started outside any service manager from the system pid file.
pidfile=/run/charon.pid
if [[ -r $pidfile ]]; then
    pid=$(cat "$pidfile")
    if [[ $pid =~ ^[0-9]+$ ]] && [[ -e /proc/$pid ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == charon ]] &&
        [[ "$(readlink "/proc/$pid/ns/net")" == "$(readlink /proc/1/ns/net)" ]] &&
        [[ "$(readlink "/proc/$pid/ns/mnt")" == "$(readlink /proc/1/ns/mnt)" ]]; then
        echo "stopping system charon (pid $pid)"
        kill "$pid" || true
    fi
fi
