"""Portal app: breaking-news items, their four-eyes workflow, sections readers follow."""
