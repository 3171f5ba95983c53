/**
 * no-forbidden-imports@1 — report imports of forbidden modules.
 *
 * main({files, options: {forbidden: [names]}}, ctx) → {findings: [{rule, file, line, column, message}]}
 * Lines and columns are 1-based and point at the module name's string literal. Findings are
 * sorted by file, line, column. A file that does not parse yields one finding of rule `parse`.
 * Matched forms: `import … from 'm'`, `import 'm'`, `export … from 'm'`, `import('m')`,
 * `require('m')` (a literal argument). `m` matches a forbidden `f` when m === f or m starts with `f/`.
 */
var SOURCE = /\.(c|m)?(j|t)sx?$/;
var RULE = 'no-forbidden-imports';

function forbiddenBy(list, name) {
  for (var i = 0; i < list.length; i += 1) {
    if (name === list[i] || name.indexOf(list[i] + '/') === 0) return list[i];
  }
  return undefined;
}

function main(input, ctx) {
  var files = (input && input.files) || {};
  var forbidden = ((input && input.options && input.options.forbidden) || []).map(String);
  var kit = ctx.require('codekit');
  var findings = [];
  Object.keys(files).sort().forEach(function (path) {
    if (!SOURCE.test(path) || /(^|\/)node_modules\//.test(path)) return;
    var ast;
    try {
      ast = kit.parse(files[path], { typescript: /\.(c|m)?tsx?$/.test(path), jsx: /x$/.test(path) });
    } catch (err) {
      var loc = err && err.loc;
      findings.push({ rule: 'parse', file: path, line: loc ? loc.line : 1, column: loc ? loc.column + 1 : 1, message: String(err && err.message) });
      return;
    }
    function check(literal, how) {
      if (!literal || literal.type !== 'StringLiteral') return;
      var match = forbiddenBy(forbidden, literal.value);
      if (match === undefined) return;
      findings.push({
        rule: RULE,
        file: path,
        line: literal.loc.start.line,
        column: literal.loc.start.column + 1,
        message: how + ' of "' + literal.value + '" is forbidden' + (match === literal.value ? '' : ' (' + match + ' is)'),
      });
    }
    kit.traverse(ast, {
      ImportDeclaration: function (p) { check(p.node.source, 'import'); },
      ExportNamedDeclaration: function (p) { if (p.node.source) check(p.node.source, 'export'); },
      ExportAllDeclaration: function (p) { check(p.node.source, 'export'); },
      CallExpression: function (p) {
        var callee = p.node.callee;
        if (callee.type === 'Import') check(p.node.arguments[0], 'import()');
        else if (callee.type === 'Identifier' && callee.name === 'require' && !p.scope.hasBinding('require')) check(p.node.arguments[0], 'require');
      },
      ImportExpression: function (p) { check(p.node.source, 'import()'); },
    });
  });
  findings.sort(function (a, b) {
    return a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.column - b.column;
  });
  return { findings: findings };
}
