-- An article is recognised by its link, or by a guid that is an absolute
-- URI, whichever feed brought it: both are looked up at every poll.
CREATE INDEX articles_url ON articles (url);
CREATE INDEX articles_guid ON articles (guid);
