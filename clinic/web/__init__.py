"""The clinic web view: review, edit, sign and export notes beside their transcripts (docs/clinic-web.md)."""
