// Runs an HTML page's scripts in jsdom (the module's path in $JSDOM) and prints, as JSON, the
// errors they raised and what the page says it drew: its <body>'s data-* attributes, and how
// many elements carry each of the data-* attributes named after the page's path.
"use strict";
const { JSDOM, VirtualConsole } = require(process.env.JSDOM);
const fs = require("fs");
const [page, ...marks] = process.argv.slice(2);
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
for (const mark of marks) counts[mark] = body.querySelectorAll(`[${mark}]`).length;
const data = {};
for (const a of body.attributes) data[a.name] = a.value;
console.log(JSON.stringify({ errors, body: data, counts }));
