/**
 * The documentation stays true to the code: docs/commands.md is what `npm run readme` (`oclif readme`)
 * makes from the built commands' help today, the README stays a short front page, and every relative
 * link in README.md and docs/ names a file (and a heading) that exists.
 */
import {execFile} from 'node:child_process'
import {copyFile, mkdtemp, readFile, readdir, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join, relative} from 'node:path'
import {fileURLToPath} from 'node:url'
import {describe, expect, it} from 'vitest'

const root = fileURLToPath(new URL('../../', import.meta.url))

describe('docs/commands.md', () => {
  it('is current: `oclif readme` over a copy of it changes nothing (otherwise run `npm run readme`)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hvmem-docs-'))
    try {
      const copy = join(dir, 'commands.md')
      await copyFile(join(root, 'docs/commands.md'), copy)
      // the same command as `npm run readme`, writing the copy instead of docs/commands.md
      await new Promise<void>((resolve, reject) =>
        execFile(
          process.execPath,
          [join(root, 'node_modules/oclif/bin/run.js'), 'readme', '--no-aliases', '--readme-path', copy],
          {cwd: root, env: {...process.env, OCLIF_SKIP_NEW_VERSION_CHECK: 'true'}},
          (error, _stdout, stderr) => (error ? reject(new Error(`oclif readme failed: ${stderr}`)) : resolve()),
        ),
      )
      const [current, regenerated] = await Promise.all([readFile(join(root, 'docs/commands.md'), 'utf8'), readFile(copy, 'utf8')])
      expect(current, 'docs/commands.md is stale: run `npm run readme` and commit it').toBe(regenerated)
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })
})

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-')
}

async function markdownFiles(): Promise<string[]> {
  const docs = (await readdir(join(root, 'docs'))).filter((name) => name.endsWith('.md')).map((name) => join(root, 'docs', name))
  return [join(root, 'README.md'), ...docs]
}

/** The headings of a markdown file outside code blocks, as anchors. */
function anchors(text: string): Set<string> {
  const found = new Set<string>()
  let fenced = false
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced
    const heading = fenced ? null : /^#{1,6} (.*)$/.exec(line)
    if (heading) found.add(anchor(heading[1]!))
  }
  return found
}

describe('README.md and docs/', () => {
  it('keeps the README a short front page, with the set-up commands CI runs as its first sh block', async () => {
    const readme = await readFile(join(root, 'README.md'), 'utf8')
    expect(readme.split('\n').length).toBeLessThan(200)
    const block = /^```sh\n([\s\S]*?)^```$/m.exec(readme)
    expect(block?.[1]).toMatch(/^sh scripts\/setup\.sh && npm run demo .*\nnpm test .*\n$/)
  })

  it('links only to files and headings that exist', async () => {
    const broken: string[] = []
    for (const file of await markdownFiles()) {
      const text = await readFile(file, 'utf8')
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue // https:, mailto:
        const [path, hash] = target!.split('#') as [string, string | undefined]
        const linked = path === '' ? file : join(dirname(file), path)
        let linkedText: string
        try {
          linkedText = await readFile(linked, 'utf8')
        } catch {
          broken.push(`${relative(root, file)}: ${target} (no such file)`)
          continue
        }
        if (hash !== undefined && !anchors(linkedText).has(hash)) broken.push(`${relative(root, file)}: ${target} (no such heading)`)
      }
    }
    expect(broken).toEqual([])
  })
})
