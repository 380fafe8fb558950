// Runs an HTML page's scripts in jsdom (the module's path in $JSDOM) and prints, as JSON, the
// errors they raised, its <body>'s attributes, how many elements each CSS selector given after
// the page's path finds, and the global `injected` (which no script of the page sets).
"use strict";
const { JSDOM, VirtualConsole } = require(process.env.JSDOM);
const fs = require("fs");
const [page, ...selectors] = process.argv.slice(2);
const errors = [];
const console_ = new VirtualConsole();
console_.on("jsdomError", (e) => errors.push(String((e && e.message) || e)));
console_.on("error", (...args) => errors.push(args.join(" ")));
const dom = new JSDOM(fs.readFileSync(page, "utf8"), {
  runScripts: "dangerously",
  virtualConsole: console_,
});
const body = dom.window.document.body;
const counts = {};
for (const selector of selectors) counts[selector] = body.querySelectorAll(selector).length;
const data = {};
for (const a of body.attributes) data[a.name] = a.value;
const injected = dom.window.injected === undefined ? null : String(dom.window.injected);
console.log(JSON.stringify({ errors, body: data, counts, injected }));
