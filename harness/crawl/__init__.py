"""The crawl stage: each persona's browser visits header-bidding sites; bids, requests and syncs."""
