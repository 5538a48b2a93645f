// Where the page finds the search API. apiBase "" means the same origin that serves this page
// (`lookalike serve`); a cloud deployment rewrites this file with its API Gateway stage URL,
// e.g. "https://abc123.execute-api.eu-west-1.amazonaws.com/prod", and optionally an API key.
// `?api=https://...` in the page URL overrides apiBase; the Settings panel stores a key per API.
window.LOOKALIKE_CONFIG = { apiBase: "", apiKey: "" };
