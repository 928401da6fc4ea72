"""The OHIF viewer: installed from npm at a pinned version (integrity checked), its app-config
generated from our settings, our script injected into its index.html, and its CSP. Knows no
HTTP routes (``klinika.web`` serves it)."""
