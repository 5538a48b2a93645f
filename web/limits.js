// Generated from lookalike/limits.py by `python -m lookalike.artifacts.web_limits`; do not edit.
window.LOOKALIKE_LIMITS = {"kDefault": 5, "kMax": 100, "maxBodyBytes": 6291456};
