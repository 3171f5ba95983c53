/**
 * require-to-import@1 — CommonJS to ES modules.
 *
 * main({files, options: {exports = true, extensions = true, packageType = true}}, ctx) → {files, changed, converted, skipped}
 *   converted  {path: number of statements converted}
 *   skipped    [{file, line, reason}] requires and exports left as they were
 *
 * Top-level statements only (anything nested stays and is listed in `skipped`):
 *   const a = require('m')            → import a from 'm'  (import * as a when m is a repository
 *                                       file whose exports all become named exports)
 *   const { a, b: c } = require('m')  → import { a, b as c } from 'm'
 *   const a = require('m').b          → import { b as a } from 'm'
 *   require('m')                      → import 'm'
 *   module.exports = { a, b }         → export { a, b }      (shorthand identifiers only)
 *   module.exports = expr             → export default expr
 *   exports.a = a / module.exports.a = a → export { a }
 *   exports.a = <function/class/expr> → export const a = …  (export function a … for a named function)
 * A file with no require/exports is not changed. Relative sources get their extension when the
 * target is in `files` (`./util` → `./util.js`). With `packageType`, a `package.json` whose
 * `type` is not `module` gets `"type": "module"` once files were converted and no require()
 * is left (otherwise it is listed in `skipped`).
 */
var SOURCE = /\.(c|m)?jsx?$|\.ts$/;

function requiredSource(node) {
  if (!node || node.type !== 'CallExpression' || node.callee.type !== 'Identifier' || node.callee.name !== 'require') return undefined;
  var arg = node.arguments[0];
  return node.arguments.length === 1 && arg && arg.type === 'StringLiteral' ? arg.value : undefined;
}

function isModuleExports(node) {
  return node && node.type === 'MemberExpression' && !node.computed && node.object.type === 'Identifier' &&
    node.object.name === 'module' && node.property.type === 'Identifier' && node.property.name === 'exports';
}

/** `exports.x` or `module.exports.x` → 'x'. */
function exportedName(node) {
  if (!node || node.type !== 'MemberExpression' || node.computed || node.property.type !== 'Identifier') return undefined;
  var object = node.object;
  if ((object.type === 'Identifier' && object.name === 'exports') || isModuleExports(object)) return node.property.name;
  return undefined;
}

function dirOf(path) {
  var i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

function normalize(parts) {
  var out = [];
  parts.forEach(function (part) {
    if (part === '' || part === '.') return;
    if (part === '..') out.pop(); else out.push(part);
  });
  return out.join('/');
}

var CANDIDATES = [['', ''], ['.js', '.js'], ['.ts', '.js'], ['.mjs', '.mjs'], ['.cjs', '.cjs'], ['/index.js', '/index.js'], ['/index.ts', '/index.js']];

/** The repository file a relative require names, with the suffix ES modules need: {path, suffix} or undefined. */
function resolveRelative(source, from, files) {
  if (source.indexOf('./') !== 0 && source.indexOf('../') !== 0) return undefined;
  var base = normalize((dirOf(from) + '/' + source).split('/'));
  for (var i = 0; i < CANDIDATES.length; i += 1) {
    if (Object.prototype.hasOwnProperty.call(files, base + CANDIDATES[i][0])) return { path: base + CANDIDATES[i][0], suffix: CANDIDATES[i][1] };
  }
  return undefined;
}

function withExtension(source, from, files) {
  var target = resolveRelative(source, from, files);
  return target ? source + target.suffix : source;
}

/** Whether a converted file will have only named exports (so `const m = require(it)` becomes `import * as m`). */
function namedExportsOnly(kit, path, text) {
  if (!SOURCE.test(path)) return false;
  var ast;
  try { ast = kit.parse(text, { typescript: /\.ts$/.test(path) }); } catch (err) { return false; }
  var named = false;
  var body = ast.program.body;
  for (var i = 0; i < body.length; i += 1) {
    var node = body[i];
    if (node.type !== 'ExpressionStatement' || node.expression.type !== 'AssignmentExpression') continue;
    var e = node.expression;
    if (isModuleExports(e.left)) {
      var shorthand = e.right.type === 'ObjectExpression' && e.right.properties.every(function (p) {
        return p.type === 'ObjectProperty' && !p.computed && p.key.type === 'Identifier' && p.value.type === 'Identifier';
      });
      if (!shorthand) return false;
      named = true;
    } else if (exportedName(e.left) !== undefined) named = true;
  }
  return named;
}

function convertFile(kit, path, text, files, options) {
  var t = kit.types;
  var ast = kit.parse(text, { typescript: /\.ts$/.test(path), jsx: /x$/.test(path) });
  var body = ast.program.body;
  var converted = 0;
  var skipped = [];
  var quote = 'double';
  // Before any node is replaced (traversal and recast's reprinting both rely on the original tree).
  kit.traverse(ast, {
    CallExpression: function (p) {
      if (requiredSource(p.node) === undefined) return;
      if (quote === 'double' && p.node.arguments[0].extra && String(p.node.arguments[0].extra.raw).charAt(0) === "'") quote = 'single';
      if (p.getFunctionParent()) skipped.push({ file: path, line: p.node.loc ? p.node.loc.start.line : 0, reason: 'require() inside a function' });
    },
  });
  var source = function (value) { return t.stringLiteral(options.extensions ? withExtension(value, path, files) : value); };
  for (var i = 0; i < body.length; i += 1) {
    var node = body[i];
    var replacement = null;
    if (node.type === 'VariableDeclaration' && node.declarations.length === 1) {
      var d = node.declarations[0];
      var from = requiredSource(d.init);
      var member = d.init && d.init.type === 'MemberExpression' && !d.init.computed && d.init.property.type === 'Identifier' ? requiredSource(d.init.object) : undefined;
      if (from !== undefined && d.id.type === 'Identifier') {
        var target = resolveRelative(from, path, files);
        var namespace = options.exports && target !== undefined && namedExportsOnly(kit, target.path, files[target.path]);
        var specifier = namespace ? t.importNamespaceSpecifier(t.identifier(d.id.name)) : t.importDefaultSpecifier(t.identifier(d.id.name));
        replacement = t.importDeclaration([specifier], source(from));
      } else if (from !== undefined && d.id.type === 'ObjectPattern') {
        var simple = d.id.properties.every(function (p) { return p.type === 'ObjectProperty' && !p.computed && p.key.type === 'Identifier' && p.value.type === 'Identifier'; });
        if (simple) {
          replacement = t.importDeclaration(d.id.properties.map(function (p) {
            return t.importSpecifier(t.identifier(p.value.name), t.identifier(p.key.name));
          }), source(from));
        } else skipped.push({ file: path, line: node.loc.start.line, reason: 'destructuring with defaults or nesting' });
      } else if (member !== undefined && d.id.type === 'Identifier') {
        replacement = t.importDeclaration([t.importSpecifier(t.identifier(d.id.name), t.identifier(d.init.property.name))], source(member));
      }
    } else if (node.type === 'ExpressionStatement') {
      var e = node.expression;
      var bare = requiredSource(e);
      if (bare !== undefined) {
        replacement = t.importDeclaration([], source(bare));
      } else if (options.exports && e.type === 'AssignmentExpression' && e.operator === '=') {
        var name = exportedName(e.left);
        if (isModuleExports(e.left)) {
          var shorthand = e.right.type === 'ObjectExpression' && e.right.properties.every(function (p) {
            return p.type === 'ObjectProperty' && !p.computed && p.key.type === 'Identifier' && p.value.type === 'Identifier';
          });
          replacement = shorthand
            ? t.exportNamedDeclaration(null, e.right.properties.map(function (p) { return t.exportSpecifier(t.identifier(p.value.name), t.identifier(p.key.name)); }))
            : t.exportDefaultDeclaration(e.right);
        } else if (name !== undefined) {
          var right = e.right;
          if (right.type === 'Identifier') {
            replacement = t.exportNamedDeclaration(null, [t.exportSpecifier(t.identifier(right.name), t.identifier(name))]);
          } else if (right.type === 'FunctionExpression' && right.id && right.id.name === name) {
            replacement = t.exportNamedDeclaration(t.functionDeclaration(right.id, right.params, right.body, right.generator, right.async));
          } else {
            replacement = t.exportNamedDeclaration(t.variableDeclaration('const', [t.variableDeclarator(t.identifier(name), right)]));
          }
        }
      }
    }
    if (replacement) {
      replacement.comments = node.comments;
      body[i] = replacement;
      converted += 1;
    }
  }
  if (converted > 0) {
    // ES modules are strict: the directive is redundant once the file is one.
    ast.program.directives = (ast.program.directives || []).filter(function (d) { return d.value.value !== 'use strict'; });
  }
  return { converted: converted, skipped: skipped, text: converted > 0 ? kit.print(ast, { quote: quote }) : text };
}

function main(input, ctx) {
  var files = (input && input.files) || {};
  var given = (input && input.options) || {};
  var options = { exports: given.exports !== false, extensions: given.extensions !== false, packageType: given.packageType !== false };
  var kit = ctx.require('codekit');
  var out = {};
  var changed = [];
  var converted = {};
  var skipped = [];
  Object.keys(files).sort().forEach(function (path) {
    if (!SOURCE.test(path) || /(^|\/)node_modules\//.test(path)) return;
    var text = files[path];
    if (text.indexOf('require(') < 0 && text.indexOf('exports') < 0) return;
    var result;
    try {
      result = convertFile(kit, path, text, files, options);
    } catch (err) {
      skipped.push({ file: path, line: 0, reason: 'not parsed: ' + String(err && err.message) });
      return;
    }
    skipped = skipped.concat(result.skipped);
    if (result.converted > 0 && result.text !== text) {
      out[path] = result.text;
      changed.push(path);
      converted[path] = result.converted;
    }
  });
  var manifest = files['package.json'];
  var nested = skipped.some(function (s) { return s.reason === 'require() inside a function'; });
  if (options.packageType && changed.length > 0 && manifest !== undefined && !nested) {
    var pkg;
    try { pkg = JSON.parse(manifest); } catch (err) { pkg = undefined; }
    if (pkg && typeof pkg === 'object' && pkg.type !== 'module') {
      pkg.type = 'module';
      var indent = (/\n([ \t]+)"/.exec(manifest) || [null, '  '])[1];
      out['package.json'] = JSON.stringify(pkg, null, indent) + (manifest.slice(-1) === '\n' ? '\n' : '');
      changed.push('package.json');
      changed.sort();
      converted['package.json'] = 1;
    }
  } else if (options.packageType && changed.length > 0 && manifest !== undefined && nested) {
    skipped.push({ file: 'package.json', line: 0, reason: 'type not set to module: some require() calls remain' });
  }
  return { files: out, changed: changed, converted: converted, skipped: skipped };
}
