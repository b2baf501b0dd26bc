// Read Prebid.js state from a page; evaluated by the crawler as one function of (op, arg).
// The global is found through _pbjsGlobals (Prebid's list of its global names), else "pbjs".
(args) => {
  const [op, arg] = args;
  const names = (Array.isArray(window._pbjsGlobals) ? window._pbjsGlobals : []).concat(["pbjs"]);
  const name = names.find((n) => window[n] && typeof window[n].getBidResponses === "function" && window[n].version);
  if (!name) return null;
  const p = window[name];
  const pick = (b) => ({
    bidder: b.bidderCode || b.bidder || "",
    cpm: Number(b.cpm),
    currency: b.currency || null,
    ad_unit: b.adUnitCode || "",
    width: Number.isFinite(b.width) ? b.width : null,
    height: Number.isFinite(b.height) ? b.height : null,
    response_ms: Number.isFinite(b.timeToRespond) ? b.timeToRespond : null,
    ad_id: b.adId || "",
    auction_id: b.auctionId || "",
    status: b.status || "",
  });
  const responses = () => {
    const all = [];
    const by = p.getBidResponses() || {};
    for (const unit of Object.keys(by)) for (const b of (by[unit] && by[unit].bids) || []) all.push(pick(b));
    return all;
  };
  if (op === "state") {
    const events = typeof p.getEvents === "function" ? p.getEvents() : [];
    return {
      global: name,
      version: String(p.version),
      auction_ends: events.filter((e) => e.eventType === "auctionEnd").length,
      responses: responses().length,
      ad_units: (p.adUnits || []).length,
    };
  }
  if (op === "bids") {
    return { version: String(p.version), bids: responses(), winning: (p.getAllWinningBids() || []).map(pick) };
  }
  if (op === "force") {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), arg + 2000);
      p.requestBids({
        timeout: arg,
        bidsBackHandler: (bids, timedOut, auctionId) => {
          clearTimeout(timer);
          resolve(auctionId || "");
        },
      });
    });
  }
  return null;
};
