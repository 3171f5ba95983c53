/**
 * rename-symbol@1 — rename a module-level identifier and its references across files.
 *
 * main({files, options: {from, to}}, ctx) → {files, changed, renamed, skipped}
 *   files    the new texts of the files it changed (path → text)
 *   changed  their paths, sorted
 *   renamed  {path: number of identifiers renamed}
 *   skipped  [{file, reason}] files that could not be parsed (left unchanged)
 *
 * What is renamed, per file (Babel's scope analysis over a recast-preserved AST, so untouched
 * code keeps its formatting):
 * - the program-scope binding named `from` (function, class, variable, import) with every
 *   reference and assignment to it — not inner bindings that shadow it;
 * - the imported name of `import { from [as z] } from './rel'` and re-exports `export { from }
 *   from './rel'` (relative sources only: other packages' exports are not the repository's);
 * - `export { from }` exports the new name; `export { from as z }` keeps `z`;
 * - CommonJS: `exports.from`, `module.exports.from`, keys of `module.exports = { from }`,
 *   `const { from } = require('./rel')`, `require('./rel').from`, and `m.from` where `m` is
 *   `require('./rel')` or `import * as m from './rel'`.
 * Never: string contents, comments, other properties (`obj.from`), or a file where `to` is
 * already bound where a renamed reference sits (that is an error naming the file).
 */
var SOURCE = /\.(c|m)?(j|t)sx?$/;
var IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
var RESERVED = ('break case catch class const continue debugger default delete do else enum export extends false finally for ' +
  'function if import in instanceof new null return super switch this throw true try typeof var void while with yield let static ' +
  'implements interface package private protected public await').split(' ');

function isRelative(source) {
  return typeof source === 'string' && (source.indexOf('./') === 0 || source.indexOf('../') === 0);
}

function requiredSource(node) {
  if (!node || node.type !== 'CallExpression' || node.callee.type !== 'Identifier' || node.callee.name !== 'require') return undefined;
  var arg = node.arguments[0];
  return arg && arg.type === 'StringLiteral' ? arg.value : undefined;
}

/** `money` in `money.x` where `const money = require('./rel')` (or `import * as money from './rel'`). */
function isProjectModule(path, object) {
  if (object.type !== 'Identifier') return false;
  var binding = path.scope.getBinding(object.name);
  if (!binding) return false;
  var node = binding.path.node;
  if (node.type === 'VariableDeclarator') return node.id.type === 'Identifier' && isRelative(requiredSource(node.init));
  if (node.type === 'ImportNamespaceSpecifier') return isRelative(binding.path.parent.source.value);
  return false;
}

function isModuleExports(node) {
  return node && node.type === 'MemberExpression' && !node.computed && node.object.type === 'Identifier' &&
    node.object.name === 'module' && node.property.type === 'Identifier' && node.property.name === 'exports';
}

function renameFile(kit, path, text, from, to) {
  var ast = kit.parse(text, { typescript: /\.(c|m)?tsx?$/.test(path), jsx: /x$/.test(path) });
  var count = 0;
  var conflict;
  function rename(node) {
    if (node && node.type === 'Identifier' && node.name === from) { node.name = to; count += 1; }
  }
  function guard(scopePath) {
    if (scopePath.scope.hasBinding(to) && !conflict) conflict = 'line ' + scopePath.node.loc.start.line + ': ' + to + ' is already bound here';
  }
  kit.traverse(ast, {
    Program: function (program) {
      var binding = program.scope.getOwnBinding(from);
      if (!binding) return;
      if (program.scope.hasOwnBinding(to)) conflict = to + ' is already declared at the top level';
      rename(binding.identifier);
      binding.referencePaths.forEach(function (ref) {
        guard(ref);
        var parent = ref.parent;
        if (parent.type === 'ObjectProperty' && parent.shorthand && parent.value === ref.node) {
          // `{ from }` as a value: keep the property name unless it is what the module exports.
          var owner = ref.parentPath.parentPath;
          var exported = owner && owner.parent && owner.parent.type === 'AssignmentExpression' && isModuleExports(owner.parent.left);
          if (exported) rename(parent.key);
          else parent.shorthand = false;
          if (parent.extra) parent.extra.shorthand = false;
        }
        if (parent.type === 'ExportSpecifier' && parent.local === ref.node && parent.exported.name === from) rename(parent.exported);
        rename(ref.node);
      });
      binding.constantViolations.forEach(function (violation) {
        guard(violation);
        var node = violation.node;
        if (node.type === 'AssignmentExpression') rename(node.left);
        else if (node.type === 'UpdateExpression') rename(node.argument);
        else if (node.type === 'VariableDeclarator') rename(node.id);
      });
    },
    ImportSpecifier: function (p) {
      if (isRelative(p.parent.source.value) && p.node.imported.type === 'Identifier' && p.node.imported.name === from) {
        var sameLocal = p.node.local.name === from || p.node.local.name === to;
        rename(p.node.imported);
        if (sameLocal) rename(p.node.local);
      }
    },
    ExportSpecifier: function (p) {
      if (p.parent.source && isRelative(p.parent.source.value)) {
        rename(p.node.local);
        if (p.node.exported.name === from) rename(p.node.exported);
      }
    },
    MemberExpression: function (p) {
      var node = p.node;
      if (node.computed || node.property.type !== 'Identifier' || node.property.name !== from) return;
      var object = node.object;
      var exportsObject = (object.type === 'Identifier' && object.name === 'exports' && !p.scope.hasBinding('exports')) || isModuleExports(object);
      if (exportsObject || isRelative(requiredSource(object)) || isProjectModule(p, object)) rename(node.property);
    },
    VariableDeclarator: function (p) {
      if (p.node.id.type !== 'ObjectPattern' || !isRelative(requiredSource(p.node.init))) return;
      p.node.id.properties.forEach(function (prop) {
        if (prop.type !== 'ObjectProperty' || prop.key.type !== 'Identifier' || prop.key.name !== from) return;
        if (prop.shorthand) { rename(prop.key); rename(prop.value); } else rename(prop.key);
      });
    },
    AssignmentExpression: function (p) {
      if (!isModuleExports(p.node.left) || p.node.right.type !== 'ObjectExpression') return;
      p.node.right.properties.forEach(function (prop) {
        if (prop.type === 'ObjectProperty' && !prop.computed && prop.key.type === 'Identifier' && prop.key.name === from && !prop.shorthand) rename(prop.key);
      });
    },
  });
  if (conflict) throw new Error('rename-symbol: ' + path + ': cannot rename ' + from + ' to ' + to + ' (' + conflict + ')');
  return { count: count, text: count > 0 ? kit.print(ast) : text };
}

function main(input, ctx) {
  var options = (input && input.options) || {};
  var files = (input && input.files) || {};
  var from = options.from;
  var to = options.to;
  if (!IDENT.test(String(from)) || !IDENT.test(String(to))) throw new Error('rename-symbol: options.from and options.to must be identifiers');
  if (RESERVED.indexOf(to) >= 0) throw new Error('rename-symbol: options.to must not be a reserved word (' + to + ')');
  if (from === to) throw new Error('rename-symbol: options.from and options.to are the same');
  var kit = ctx.require('codekit');
  var out = {};
  var changed = [];
  var renamed = {};
  var skipped = [];
  Object.keys(files).sort().forEach(function (path) {
    if (!SOURCE.test(path) || /(^|\/)node_modules\//.test(path)) return;
    var text = files[path];
    if (text.indexOf(from) < 0) return;
    var result;
    try {
      result = renameFile(kit, path, text, from, to);
    } catch (err) {
      if (String(err && err.message).indexOf('rename-symbol:') === 0) throw err;
      skipped.push({ file: path, reason: String(err && err.message) });
      return;
    }
    if (result.count > 0 && result.text !== text) {
      out[path] = result.text;
      changed.push(path);
      renamed[path] = result.count;
    }
  });
  return { files: out, changed: changed, renamed: renamed, skipped: skipped };
}
