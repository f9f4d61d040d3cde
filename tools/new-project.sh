#!/usr/bin/env bash
# Creates the skeleton of a workspace project: tools/new-project.sh libs/NAME TAG [deps...]
set -euo pipefail
dir=$1; tag=$2; shift 2
name=$(basename "$dir")
mkdir -p "$dir/src"
deps=""
for d in "$@"; do deps="$deps\"$d\": \"*\","; done
deps=${deps%,}
cat > "$dir/package.json" <<JSON
{
  "name": "@tidings/$name",
  "version": "0.1.0",
  "private": true,
  "main": "dist/index.js",
  "types": "dist/index.d.ts",
  "scripts": {
    "build": "tsc -p tsconfig.lib.json",
    "test": "jest"
  },
  "dependencies": { $deps },
  "nx": { "tags": ["$tag"] }
}
JSON
cat > "$dir/tsconfig.lib.json" <<JSON
{
  "extends": "../../tsconfig.base.json",
  "compilerOptions": { "rootDir": "src", "outDir": "dist" },
  "include": ["src/**/*.ts"],
  "exclude": ["src/**/*.spec.ts"]
}
JSON
cat > "$dir/jest.config.js" <<JS
module.exports = { ...require('../../jest.preset.js'), rootDir: __dirname, displayName: '$name' };
JS
