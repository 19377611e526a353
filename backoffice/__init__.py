"""The back-office toolkit: shared admin code (tenant scoping, a paginator that never counts millions, confirmed
actions, list filters, admin safety, server-drawn charts) used by every app's admin.py. It imports no feature
app (books, redemptions, dashboard): the dashboard and the job pages live in dashboard/."""
