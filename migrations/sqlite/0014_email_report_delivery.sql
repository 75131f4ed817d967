-- Email reports: each subscription says how the report is delivered, `link` (the summary and a
-- link to the dashboard, as before) or `pdf` (the same with the period's PDF report attached).
ALTER TABLE email_subscriptions ADD COLUMN delivery TEXT NOT NULL DEFAULT 'link';
