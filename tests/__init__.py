"""Project-wide tests (embedded PostgreSQL, settings, the skip policy, the browser test) and the helpers every
app's tests share: tests/factories.py (all factory_boy factories) and tests/helpers.py (staff users, logins)."""
