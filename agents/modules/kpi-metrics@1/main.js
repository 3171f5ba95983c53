/**
 * KPI computation (step module kpi-metrics@1; the `kpi-calculator` agent runs it).
 *
 * A plain script, no imports, no host APIs (runs in the function runtime or the QuickJS sandbox).
 * The engine calls `main(input)` with
 *   input = { prices: [{ symbol: string, date: "YYYY-MM-DD", price: number }, ...] }
 * (rows in any order) and stores the returned
 *   { kpis: { [SYMBOL]: { firstPrice, lastPrice, totalReturnPct, cagrPct, maxDrawdownPct,
 *                         volatilityPct, bestMonth, worstMonth } } }
 * with symbols in alphabetical key order. Numbers are not rounded.
 *
 * Formulas (product spec), per symbol, prices p_0..p_n sorted by date:
 * - totalReturnPct = (p_n / p_0 − 1) · 100
 * - cagrPct        = ((p_n / p_0)^(1 / years) − 1) · 100, years = days(first → last date) / 365.25,
 *                    days from UTC dates; null when years = 0 (a single price)
 * - r_i            = p_i / p_(i−1) − 1 (the "monthly" return, dated by p_i's date)
 * - volatilityPct  = sample (n−1) standard deviation of the r_i · √12 · 100; null with < 2 returns
 * - maxDrawdownPct = max_i (max(p_0..p_i) − p_i) / max(p_0..p_i) · 100 (0 if never below the peak)
 * - bestMonth / worstMonth = { date, returnPct: r_i · 100 } of the largest / smallest r_i (first
 *                    occurrence on ties); null without returns
 *
 * Errors (thrown as plain Error, surfaced by the sandbox as AgentError):
 * - no rows: "no prices in the requested window"
 * - a row that is not { symbol: non-empty string, date: YYYY-MM-DD, price: number }
 * - a non-positive or non-finite price (names symbol and date)
 * - the same symbol twice on one date (names symbol and date)
 */

var MS_PER_DAY = 86400000;
var DAYS_PER_YEAR = 365.25;
var MONTHS_PER_YEAR = 12;

function main(input) {
  var rows = input && input.prices;
  if (!Array.isArray(rows)) throw new Error('input.prices must be an array of {symbol, date, price}');
  if (rows.length === 0) throw new Error('no prices in the requested window');

  var bySymbol = groupBySymbol(rows);
  var symbols = Object.keys(bySymbol).sort();
  var kpis = {};
  for (var i = 0; i < symbols.length; i++) {
    var symbol = symbols[i];
    kpis[symbol] = symbolKpis(symbol, bySymbol[symbol]);
  }
  return { kpis: kpis };
}

function groupBySymbol(rows) {
  var bySymbol = {};
  for (var i = 0; i < rows.length; i++) {
    var row = rows[i];
    if (row === null || typeof row !== 'object') throw new Error('prices[' + i + '] must be an object');
    var symbol = row.symbol;
    var date = row.date;
    var price = row.price;
    if (typeof symbol !== 'string' || symbol === '') {
      throw new Error('prices[' + i + '].symbol must be a non-empty string');
    }
    if (typeof date !== 'string' || !isIsoDate(date)) {
      throw new Error('invalid date for ' + symbol + ': ' + JSON.stringify(date) + ' (expected YYYY-MM-DD)');
    }
    if (typeof price !== 'number' || !isFinite(price) || price <= 0) {
      throw new Error('invalid price for ' + symbol + ' on ' + date + ': ' + String(price) +
        ' (expected a positive finite number)');
    }
    if (!Object.prototype.hasOwnProperty.call(bySymbol, symbol)) bySymbol[symbol] = [];
    bySymbol[symbol].push({ date: date, price: price });
  }
  return bySymbol;
}

function symbolKpis(symbol, points) {
  // ISO dates sort correctly as strings; Array.prototype.sort is stable (ES2019).
  points.sort(function (a, b) { return a.date < b.date ? -1 : a.date > b.date ? 1 : 0; });
  for (var d = 1; d < points.length; d++) {
    if (points[d].date === points[d - 1].date) {
      throw new Error('duplicate price for ' + symbol + ' on ' + points[d].date);
    }
  }

  var first = points[0];
  var last = points[points.length - 1];
  var growth = last.price / first.price;
  var days = (utcMs(last.date) - utcMs(first.date)) / MS_PER_DAY;
  var years = days / DAYS_PER_YEAR;

  var returns = [];
  var best = null;
  var worst = null;
  var peak = first.price;
  var maxDrawdown = 0;
  for (var i = 1; i < points.length; i++) {
    var r = points[i].price / points[i - 1].price - 1;
    returns.push(r);
    if (best === null || r > best.r) best = { date: points[i].date, r: r };
    if (worst === null || r < worst.r) worst = { date: points[i].date, r: r };
    if (points[i].price > peak) peak = points[i].price;
    var drawdown = (peak - points[i].price) / peak;
    if (drawdown > maxDrawdown) maxDrawdown = drawdown;
  }

  return {
    firstPrice: first.price,
    lastPrice: last.price,
    totalReturnPct: (growth - 1) * 100,
    cagrPct: years > 0 ? (Math.pow(growth, 1 / years) - 1) * 100 : null,
    maxDrawdownPct: maxDrawdown * 100,
    volatilityPct: returns.length >= 2 ? sampleStdDev(returns) * Math.sqrt(MONTHS_PER_YEAR) * 100 : null,
    bestMonth: best === null ? null : { date: best.date, returnPct: best.r * 100 },
    worstMonth: worst === null ? null : { date: worst.date, returnPct: worst.r * 100 },
  };
}

/** Sample standard deviation (divides by n − 1); needs at least two values. */
function sampleStdDev(values) {
  var n = values.length;
  var sum = 0;
  for (var i = 0; i < n; i++) sum += values[i];
  var mean = sum / n;
  var squares = 0;
  for (var j = 0; j < n; j++) squares += (values[j] - mean) * (values[j] - mean);
  return Math.sqrt(squares / (n - 1));
}

function isIsoDate(text) {
  var m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return false;
  var date = new Date(utcMs(text));
  return date.getUTCFullYear() === Number(m[1]) && date.getUTCMonth() + 1 === Number(m[2]) &&
    date.getUTCDate() === Number(m[3]);
}

/** Milliseconds since the epoch of a YYYY-MM-DD date at 00:00 UTC. */
function utcMs(isoDate) {
  var y = Number(isoDate.slice(0, 4));
  var m = Number(isoDate.slice(5, 7));
  var d = Number(isoDate.slice(8, 10));
  var date = new Date(Date.UTC(2000, m - 1, d));
  date.setUTCFullYear(y); // Date.UTC maps years 0..99 to 1900..1999
  return date.getTime();
}
