-- q23's answer is about 3 million rows over the test files (every bid of a bidder joined with
-- every auction that bidder sells): too large to keep, so the test files compare this
-- fingerprint of it instead (the same text in Weir's test and in the Flink reference script).
-- %QUERY% stands for the SELECT of q23.sql's INSERT.
SELECT COUNT(*) AS n,
       SUM(bidder) AS s_bidder,
       SUM(price) AS s_price,
       SUM(person_id) AS s_person,
       SUM(initialBid) AS s_initial_bid,
       SUM(reserve) AS s_reserve,
       SUM(seller) AS s_seller,
       SUM(category) AS s_category,
       SUM(CAST(CHAR_LENGTH(channel) AS BIGINT)) AS l_channel,
       SUM(CAST(CHAR_LENGTH(url) AS BIGINT)) AS l_url,
       SUM(CAST(CHAR_LENGTH(name) AS BIGINT)) AS l_name,
       SUM(CAST(CHAR_LENGTH(itemName) AS BIGINT)) AS l_item,
       SUM(CAST(CHAR_LENGTH(bid_extra) AS BIGINT)) AS l_bid_extra,
       MIN(auction_dateTime) AS min_auction_time,
       MAX(expires) AS max_expires
FROM (%QUERY%) AS q23
