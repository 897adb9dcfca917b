// Kobo's playground: GraphiQL opening on the quickstart's operations, an API key field whose key is sent with every
// request, and nothing kept in the browser unless "Remember" is ticked.
//
// Plain JavaScript over the vendored UMD builds (window.React, window.ReactDOM, window.GraphiQL): no build step.
(function () {
  "use strict";

  var h = React.createElement;
  var NAMESPACE = "kobo-playground";
  var REMEMBER = NAMESPACE + ":remember";
  var API_KEY = NAMESPACE + ":apiKey";
  var NO_KEY = "No API key yet: paste one in the API key field above (it is sent as Authorization: Bearer <key>).";
  var config = JSON.parse(document.getElementById("kobo-playground-config").textContent);

  // GraphiQL's `storage` option: a Storage-like object. This one lives as long as the page, so the tabs survive
  // the remounts below (a new key, a change of storage) but not a reload, and nothing reaches localStorage.
  function MemoryStorage(entries) {
    this.items = new Map(entries || []);
  }
  MemoryStorage.prototype.getItem = function (key) {
    return this.items.has(key) ? this.items.get(key) : null;
  };
  MemoryStorage.prototype.setItem = function (key, value) {
    this.items.set(key, String(value));
  };
  MemoryStorage.prototype.removeItem = function (key) {
    this.items.delete(key);
  };
  MemoryStorage.prototype.clear = function () {
    this.items.clear();
  };
  Object.defineProperty(MemoryStorage.prototype, "length", {
    get: function () {
      return this.items.size;
    },
  });

  // The opted-in storage: localStorage under "kobo-playground:". It can be switched off, because GraphiQL writes
  // through the storage it had for a moment after it is given another one: those late writes must not land.
  function RememberedStorage() {
    this.on = true;
  }
  RememberedStorage.prototype.getItem = function (key) {
    return this.on ? localStorage.getItem(NAMESPACE + ":" + key) : null;
  };
  RememberedStorage.prototype.setItem = function (key, value) {
    if (this.on) localStorage.setItem(NAMESPACE + ":" + key, value);
  };
  RememberedStorage.prototype.removeItem = function (key) {
    if (this.on) localStorage.removeItem(NAMESPACE + ":" + key);
  };
  RememberedStorage.prototype.clear = function () {
    if (this.on) forget();
  };
  Object.defineProperty(RememberedStorage.prototype, "length", {
    get: function () {
      return rememberedEntries().length;
    },
  });

  function rememberedEntries() {
    var prefix = NAMESPACE + ":";
    return Object.keys(localStorage)
      .filter(function (key) {
        return key.indexOf(prefix) === 0 && key !== REMEMBER && key !== API_KEY;
      })
      .map(function (key) {
        return [key.slice(prefix.length), localStorage.getItem(key)];
      });
  }

  function forget() {
    Object.keys(localStorage).forEach(function (key) {
      if (key.indexOf(NAMESPACE + ":") === 0) localStorage.removeItem(key);
    });
  }

  var remembered = localStorage.getItem(REMEMBER) === "1";
  var state = {
    remember: remembered,
    storage: remembered ? new RememberedStorage() : new MemoryStorage(),
    apiKey: remembered ? localStorage.getItem(API_KEY) || "" : "",
  };

  // The key is read when a request is sent, so what is typed counts at once; a new fetcher (after the field is left,
  // or Enter) makes GraphiQL fetch the schema again, now with the key. A tab's own Authorization header wins.
  function makeFetcher(keyOf) {
    var base = GraphiQL.createFetcher({ url: config.endpoint });
    return function (params, options) {
      var key = keyOf().trim();
      var headers = Object.assign({}, key ? { Authorization: "Bearer " + key } : {}, (options && options.headers) || {});
      var authorized = Object.keys(headers).some(function (name) {
        return name.toLowerCase() === "authorization";
      });
      if (!authorized) return Promise.resolve({ errors: [{ message: NO_KEY }] }); // say so without a 401 round trip
      return base(params, Object.assign({}, options, { headers: headers }));
    };
  }

  function Playground() {
    var keyRef = React.useRef(state.apiKey);
    var settings = React.useState({ remember: state.remember, storage: state.storage, generation: 0 });
    var current = settings[0];
    var setSettings = settings[1];
    var committed = React.useState(state.apiKey);
    var setCommitted = committed[1];
    var fetcher = React.useMemo(
      function () {
        return makeFetcher(function () {
          return keyRef.current;
        });
      },
      [committed[0]]
    );

    function commitKey() {
      if (current.remember) localStorage.setItem(API_KEY, keyRef.current);
      setCommitted(keyRef.current);
    }

    function toggleRemember(event) {
      var storage;
      if (event.target.checked) {
        storage = new RememberedStorage();
        current.storage.items.forEach(function (value, key) {
          storage.setItem(key, value);
        });
        localStorage.setItem(REMEMBER, "1");
        localStorage.setItem(API_KEY, keyRef.current);
      } else {
        storage = new MemoryStorage(rememberedEntries());
        current.storage.on = false;
        forget();
      }
      setSettings({ remember: event.target.checked, storage: storage, generation: current.generation + 1 });
    }

    var bar = h(
      "header",
      { className: "kobo-bar" },
      h("strong", null, "Kobo playground"),
      h(
        "label",
        null,
        "API key",
        h("input", {
          id: "kobo-api-key",
          type: "text",
          placeholder: "mk_test_…",
          autoComplete: "off",
          spellCheck: false,
          defaultValue: state.apiKey,
          onChange: function (event) {
            keyRef.current = event.target.value;
          },
          onBlur: commitKey,
          onKeyDown: function (event) {
            if (event.key === "Enter") commitKey();
          },
        })
      ),
      h(
        "label",
        { title: "Off: tabs, headers and the key live only in this page and go when you close it." },
        h("input", { id: "kobo-remember", type: "checkbox", checked: current.remember, onChange: toggleRemember }),
        "Remember tabs and key in this browser"
      ),
      h(
        "span",
        { className: "kobo-hint" },
        "Sent as ",
        h("code", null, "Authorization: Bearer <key>"),
        " with every request (a tab's own Headers win). Get a key with ",
        h("code", null, "python3 dev.py kobo keys create --org acme --mode test"),
        ": it is the last line printed. The tabs are the README quickstart, in order; run them one by one."
      )
    );
    // GraphiQL 4 fills the variables editor of the first default tab only from its `variables` prop (its query
    // comes from the tab): give it the first example's, and only when the storage holds no tabs yet.
    var firstVariables = React.useMemo(
      function () {
        return current.storage.getItem("graphiql:tabState") === null ? config.tabs[0].variables : undefined;
      },
      [current.generation]
    );
    var graphiql = h(GraphiQL, {
      key: current.generation,
      variables: firstVariables,
      fetcher: fetcher,
      storage: current.storage,
      defaultTabs: config.tabs,
      defaultEditorToolsVisibility: "variables",
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: current.remember,
      showPersistHeadersSettings: false,
    });
    return h(React.Fragment, null, bar, h("div", { className: "kobo-graphiql" }, graphiql));
  }

  ReactDOM.createRoot(document.getElementById("kobo-playground")).render(h(Playground));
})();
