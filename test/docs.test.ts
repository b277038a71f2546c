// Keeps the docs honest: every error code made in the sources has a row in docs/errors.md, and no row names a
// code that no longer exists; every public symbol has TSDoc.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('..', import.meta.url));

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sources(path, out);
    else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

test('every ERR_LOOPWORK_ code in the sources is documented in docs/errors.md, and only those', () => {
  const codes = new Set<string>();
  for (const pkg of readdirSync(join(root, 'packages'))) {
    for (const file of sources(join(root, 'packages', pkg, 'src'))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/'(ERR_LOOPWORK_[A-Z0-9_]+)'/g)) codes.add(m[1]!);
    }
  }
  const doc = readFileSync(join(root, 'docs', 'errors.md'), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `(ERR_LOOPWORK_[A-Z0-9_]+)` \|/gm)].map((m) => m[1]!));
  assert.ok(codes.size > 30, `found ${codes.size} codes`);
  assert.deepEqual([...codes].filter((c) => !documented.has(c)).sort(), [], 'codes missing from docs/errors.md');
  assert.deepEqual([...documented].filter((c) => !codes.has(c)).sort(), [], 'documented codes that no longer exist');
});

test('every public export of the packages, and every public member of their classes and interfaces, has TSDoc', () => {
  const indexes = ['core', 'tls', 'server', 'service'].map((p) => join(root, 'packages', p, 'src', 'index.ts'));
  const program = ts.createProgram(indexes, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    customConditions: ['loopwork-source'],
  });
  const checker = program.getTypeChecker();
  const documented = (sym: ts.Symbol, decl: ts.Declaration): boolean =>
    ts.displayPartsToString(sym.getDocumentationComment(checker)).trim() !== '' || ts.getJSDocTags(decl).length > 0;
  const where = (decl: ts.Node): string => {
    const file = decl.getSourceFile();
    return `${file.fileName.slice(root.length)}:${file.getLineAndCharacterOfPosition(decl.getStart()).line + 1}`;
  };
  const missing = new Set<string>();
  for (const index of indexes) {
    const module = checker.getSymbolAtLocation(program.getSourceFile(index)!)!;
    for (const exported of checker.getExportsOfModule(module)) {
      const sym = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      const decl = sym.declarations?.[0];
      if (decl === undefined || !decl.getSourceFile().fileName.startsWith(join(root, 'packages'))) continue;
      if (ts.isSourceFile(decl)) {
        // A namespace export (`export * as native`): its module comment.
        if (!decl.text.trimStart().startsWith('/**')) missing.add(`${exported.getName()} (module) ${where(decl)}`);
        continue;
      }
      if (!documented(sym, decl)) missing.add(`${exported.getName()} ${where(decl)}`);
      if ((sym.flags & (ts.SymbolFlags.Class | ts.SymbolFlags.Interface)) === 0) continue;
      for (const member of sym.members?.values() ?? []) {
        const m = member.declarations?.[0];
        const name = member.getName();
        if (m === undefined || member.flags & ts.SymbolFlags.TypeParameter) continue;
        if (name.startsWith('_') || name.startsWith('#') || name === '__constructor') continue;
        if (ts.getCombinedModifierFlags(m) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) continue;
        if (
          (m as ts.NamedDeclaration).name !== undefined &&
          ts.isComputedPropertyName((m as ts.NamedDeclaration).name!)
        )
          continue;
        if (!documented(member, m)) missing.add(`${exported.getName()}.${name} ${where(m)}`);
      }
    }
  }
  assert.deepEqual([...missing], []);
});
