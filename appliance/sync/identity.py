"""Who the device's certificate says it is, and a plain sentence when the broker refuses it.

The broker takes the device's identity from its certificate: the common name is its user name and
client id, and (certificates from scripts/pki/make-cert.sh) the organizational unit its site. The
ACL lets that identity publish only under scribe/<site>/<id>/, so a config whose [device] id or
site differs from the certificate's is connected, yet every message it sends is dropped.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from appliance.config.schema import DeviceConfig
from common.protocol import Topics


@dataclass(frozen=True)
class CertName:
    common_name: str
    site: str  # organizational unit; "" on certificates issued without one


def certificate_name(path: str) -> CertName | None:
    """Common name and organizational unit of a PEM certificate (None if it cannot be read)."""
    try:
        # The stdlib's only certificate parser; it reads the file without a TLS context.
        decoded = ssl._ssl._test_decode_cert(path)  # type: ignore[attr-defined]
    except (OSError, ssl.SSLError, ValueError):
        return None
    fields = {key: value for rdn in decoded.get("subject", ()) for key, value in rdn}
    return CertName(fields.get("commonName", ""), fields.get("organizationalUnitName", ""))


def mismatch(device: DeviceConfig, cert_file: str) -> str:
    """What in the config disagrees with the certificate ("" if nothing, or it cannot be read)."""
    name = certificate_name(cert_file)
    if name is None:
        return ""
    problems = []
    if name.common_name and name.common_name != device.id:
        problems.append(f'[device] id "{device.id}" is not the name on this device\'s certificate '
                        f'("{name.common_name}"): set id = "{name.common_name}", or install the '
                        f'certificate issued for "{device.id}"')
    if name.site and name.site != device.site:
        problems.append(f'[device] site "{device.site}" is not the site this device\'s certificate was '
                        f'issued for ("{name.site}")')
    return "; ".join(problems)


def refusal_text(reason: str, topics: Topics, device: DeviceConfig, cert_file: str) -> str:
    """The sentence for the sync status when the broker refuses what this device publishes."""
    why = mismatch(device, cert_file) or ("check that the broker's ACL lets this device's certificate "
                                          "publish there")
    return (f"the clinic broker refuses every message this device sends to {topics.topic('…')} "
            f"({reason}), so nothing is delivered: {why}")
