"""Real-browser end-to-end tests (Chromium through Playwright)."""
