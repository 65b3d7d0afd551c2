// Exact path matching over the route declarations: the path is split on
// "/" and every segment must match (no segment is dropped, so an empty
// segment, a trailing slash or an extra segment matches nothing: 404).
// "." and ".." are ordinary segments (no URL normalisation): valid names.
// Literal routes win over parameter routes (/ids/next before /ids/:id).
import type { RouteDecl } from './route.js'
import { HttpError, badRequest } from './errors.js'

export interface Match {
  /** The route pattern, e.g. "/counter/:name/value" (also the metrics label). */
  path: string
  decl: RouteDecl
  params: Record<string, string>
}

interface Pattern {
  path: string
  segments: string[]
  /** Per segment: the parameter's name, or undefined for a literal segment. */
  params: Array<string | undefined>
  byMethod: Map<string, RouteDecl>
}

export class Router {
  private readonly patterns: Pattern[] = []
  /** The patterns by number of segments, in match order (a request only tries those of its length). */
  private readonly byLength = new Map<number, Pattern[]>()

  constructor (readonly routes: readonly RouteDecl[]) {
    for (const r of routes) {
      let p = this.patterns.find(x => x.path === r.path)
      if (p === undefined) {
        if (!r.path.startsWith('/')) throw new Error(`route path must start with /: ${r.path}`)
        const segments = r.path.split('/').slice(1)
        p = { path: r.path, segments, params: segments.map(x => x.startsWith(':') ? x.slice(1) : undefined), byMethod: new Map() }
        this.patterns.push(p)
      }
      if (p.byMethod.has(r.method)) throw new Error(`route declared twice: ${r.method} ${r.path}`)
      p.byMethod.set(r.method, r)
    }
    // Fewer parameters first: a literal segment beats a parameter.
    const params = (p: Pattern): number => p.segments.filter(s => s.startsWith(':')).length
    this.patterns.sort((a, b) => params(a) - params(b))
    for (const p of this.patterns) {
      const same = this.byLength.get(p.segments.length) ?? []
      same.push(p)
      this.byLength.set(p.segments.length, same)
    }
  }

  /** The pattern a raw path matches, or undefined (404); throws 400 on bad percent-encoding. */
  find (pathname: string): { pattern: Pattern, params: Record<string, string> } | undefined {
    if (!pathname.startsWith('/')) return undefined
    const parts = pathname.split('/')
    parts.shift()
    for (let i = 0; i < parts.length; i++) {
      if (!parts[i].includes('%')) continue
      try {
        parts[i] = decodeURIComponent(parts[i])
      } catch {
        throw badRequest('malformed URL encoding')
      }
    }
    for (const pattern of this.byLength.get(parts.length) ?? []) {
      const params = matchSegments(pattern, parts)
      if (params !== undefined) return { pattern, params }
    }
    return undefined
  }

  /** The route for a method and path (or what find() already returned for it); HttpError 404 or 405 (with Allow) otherwise. */
  match (method: string, pathname: string, found = this.find(pathname)): Match {
    if (found === undefined) throw new HttpError(404, `no such path: ${pathname}`)
    const decl = found.pattern.byMethod.get(method) ?? (method === 'HEAD' ? found.pattern.byMethod.get('GET') : undefined)
    if (decl === undefined) {
      throw new HttpError(405, `method ${method} not allowed on ${found.pattern.path}`, {}, { Allow: [...found.pattern.byMethod.keys()].join(', ') })
    }
    return { path: found.pattern.path, decl, params: found.params }
  }
}

/** The parameters if `parts` (as many as the pattern's segments) match the pattern. */
function matchSegments (pattern: Pattern, parts: string[]): Record<string, string> | undefined {
  for (let i = 0; i < parts.length; i++) {
    if (pattern.params[i] === undefined ? pattern.segments[i] !== parts[i] : parts[i] === '') return undefined
  }
  const params: Record<string, string> = {}
  for (let i = 0; i < parts.length; i++) {
    const name = pattern.params[i]
    if (name !== undefined) params[name] = parts[i]
  }
  return params
}
