-- The width, in pixels, an article declares for its card image: the
-- digest shows a smaller image at its own width instead of scaling it up
-- to the card's. NULL when the article declares none (and for articles
-- stored before this), which shows the image at the card's width.
ALTER TABLE articles ADD COLUMN image_width BIGINT;
