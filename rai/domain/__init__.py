"""The domain and its wire models: jobs, specs, projects, signatures, fair share, quotas, rankings,
archives — pure rules every program shares. Imports no backend, no client, no live state."""
