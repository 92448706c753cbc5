"""detect-secrets plugin: credentials embedded in connection URLs.

The stock plugins miss `redis://:password@host` (an empty user name) and similar forms, so any  # pragma: allowlist secret
`scheme://[user]:password@host` counts, whatever the user part.  # pragma: allowlist secret
"""
import re

from detect_secrets.plugins.base import RegexBasedDetector


class URLCredentialsDetector(RegexBasedDetector):
    """Credentials in a URL's userinfo."""

    secret_type = 'URL with embedded credentials'  # pragma: allowlist secret

    denylist = [
        re.compile(r'[a-z][a-z0-9+.\-]*://[^\s/:@"\'<>]*:([^\s/@"\'<>$]+)@[^\s/"\'<>]+', re.IGNORECASE),
    ]
