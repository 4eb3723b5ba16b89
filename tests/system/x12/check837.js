// Parses an X12 file with node-x12 in strict mode (an independent parser:
// any envelope error, wrong count or control number throws) and prints what
// it read as JSON: the interchange header and, per functional group and
// transaction set, every segment as [tag, element values...]. The Python
// tests (tests/system/test_billing.py) check the 837P structure on that.
// Usage: node check837.js FILE
'use strict';
const fs = require('fs');
const { X12Parser } = require('node-x12');

const edi = fs.readFileSync(process.argv[2], 'latin1');
let interchange;
try {
  interchange = new X12Parser(true).parse(edi);
} catch (e) {
  process.stdout.write(JSON.stringify({ ok: false, error: String(e.message || e) }) + '\n');
  process.exit(0);
}
const seg = (s) => [s.tag].concat(s.elements.map((e) => e.value));
const out = {
  ok: true,
  header: seg(interchange.header),
  trailer: seg(interchange.trailer),
  groups: interchange.functionalGroups.map((g) => ({
    header: seg(g.header),
    trailer: seg(g.trailer),
    transactions: g.transactions.map((t) => ({
      header: seg(t.header),
      trailer: seg(t.trailer),
      segments: t.segments.map(seg),
    })),
  })),
};
process.stdout.write(JSON.stringify(out) + '\n');
