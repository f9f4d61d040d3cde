/**
 * A reference build of the gateway from another git ref, to measure beside this checkout in
 * the same run (the VM's figures drift from hour to hour; a ratio within one run does not).
 * The ref is checked out in a temporary `git worktree`, its node_modules is a tree of
 * symlinks into this checkout's node_modules (no install), except the workspace's own
 * packages (@tidings/*), which point into the temporary tree so that the reference gateway
 * loads the reference hub, protocol, ... and not this checkout's. Then every workspace
 * package the gateway depends on is built with its own `build` script, dependencies first.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const git = (args, cwd = ROOT) => execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 }).trim();

/**
 * The default reference: where this branch left main (`git merge-base HEAD main`), i.e. the
 * code before this branch's changes; HEAD when there is no `main` to compare with.
 */
export function defaultBaselineRef() {
  try {
    return git(['merge-base', 'HEAD', 'main']);
  } catch {
    return 'HEAD';
  }
}

/** Links every entry of `from` (a node_modules) into `to`, except the names in `skip`. */
function linkEntries(from, to, skip = new Set()) {
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(from)) {
    if (skip.has(name)) continue;
    symlinkSync(join(from, name), join(to, name));
  }
}

/** The workspace packages `name` depends on, then itself (depth first, each once). */
function buildOrder(packages, name, out = [], seen = new Set()) {
  if (seen.has(name)) return out;
  seen.add(name);
  const pkg = packages.get(name);
  if (!pkg) throw new Error(`baseline: workspace package ${name} not found`);
  for (const dep of Object.keys(pkg.json.dependencies ?? {})) if (packages.has(dep)) buildOrder(packages, dep, out, seen);
  out.push(pkg);
  return out;
}

/**
 * Checks out `ref` in a temporary worktree and builds its gateway. Returns the commit, its
 * subject, the path of its gateway main.js and remove(), which deletes the worktree (call it
 * in a finally).
 */
export function buildBaseline(ref, log = () => {}) {
  const commit = git(['rev-parse', '--verify', `${ref}^{commit}`]);
  const subject = git(['log', '-1', '--format=%s', commit]);
  const dir = join(mkdtempSync(join(tmpdir(), 'tidings-baseline-')), 'tree');
  let added = false;
  const remove = () => {
    if (added) {
      try {
        git(['worktree', 'remove', '--force', dir]);
      } catch (err) {
        log(`baseline: git worktree remove ${dir} failed: ${err.message}`);
      }
      added = false;
    }
    rmSync(dirname(dir), { recursive: true, force: true });
  };
  try {
    git(['worktree', 'add', '--detach', dir, commit]);
    added = true;
    // node_modules: this checkout's packages, but the workspace's own from the reference tree.
    const modules = join(ROOT, 'node_modules');
    linkEntries(modules, join(dir, 'node_modules'), new Set(['@tidings']));
    const scope = join(modules, '@tidings');
    mkdirSync(join(dir, 'node_modules', '@tidings'));
    const packages = new Map();
    for (const name of readdirSync(scope)) {
      const target = readlinkSync(join(scope, name)); // relative, e.g. ../../libs/hub
      symlinkSync(target, join(dir, 'node_modules', '@tidings', name));
      const pkgDir = resolve(dir, 'node_modules', '@tidings', target);
      if (!existsSync(join(pkgDir, 'package.json'))) continue; // not in that ref
      const json = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
      packages.set(json.name, { dir: pkgDir, json });
      // A package's own node_modules (npm puts some there, e.g. services/gateway's pino).
      const own = join(resolve(scope, target), 'node_modules');
      if (existsSync(own) && !existsSync(join(pkgDir, 'node_modules'))) symlinkSync(own, join(pkgDir, 'node_modules'));
    }
    for (const pkg of buildOrder(packages, '@tidings/gateway')) {
      if (!pkg.json.scripts?.build) continue;
      log(`  building ${pkg.json.name} of ${commit.slice(0, 12)}`);
      execFileSync('npm', ['run', '--silent', 'build'], { cwd: pkg.dir, stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
    }
    const main = join(dir, 'services/gateway/dist/main.js');
    if (!existsSync(main)) throw new Error(`baseline: ${main} was not built`);
    return { ref, commit, subject, dir, main, remove };
  } catch (err) {
    remove();
    throw err;
  }
}
