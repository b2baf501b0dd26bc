// Installed in every frame before the page's own scripts: report each document.cookie write and
// each Storage.setItem to the crawler (window.__harness_record, a Playwright binding).
(() => {
  if (window.__harness_hooked) return;
  Object.defineProperty(window, "__harness_hooked", { value: true });
  const record = (kind, data) => {
    try {
      const send = window.__harness_record;
      if (typeof send === "function") send(Object.assign({ kind }, data));
    } catch (e) {
      // a page that broke the binding must not break itself
    }
  };
  const cookie = Object.getOwnPropertyDescriptor(Document.prototype, "cookie");
  if (cookie && cookie.set && cookie.configurable) {
    Object.defineProperty(Document.prototype, "cookie", {
      configurable: true,
      enumerable: cookie.enumerable,
      get() {
        return cookie.get.call(this);
      },
      set(value) {
        record("cookie", { value: String(value), host: location.hostname });
        cookie.set.call(this, value);
      },
    });
  }
  const setItem = Storage.prototype.setItem;
  Storage.prototype.setItem = function (key, value) {
    let area = "";
    try {
      area = this === window.localStorage ? "local" : this === window.sessionStorage ? "session" : "";
    } catch (e) {
      // storage access denied: the write below throws as it would without the hook
    }
    if (area) record("storage", { area, key: String(key), value: String(value), origin: location.origin });
    return setItem.apply(this, arguments);
  };
})();
