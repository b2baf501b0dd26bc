// The rig's Prebid.js: the npm package's core and two real bidder adapters, as a page would build it.
import pbjs from "prebid.js";
import "prebid.js/modules/appnexusBidAdapter";
import "prebid.js/modules/openxBidAdapter";

pbjs.processQueue();
