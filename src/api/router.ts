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
  byMethod: Map<string, RouteDecl>
}

export class Router {
  private readonly patterns: Pattern[] = []

  constructor (readonly routes: readonly RouteDecl[]) {
    for (const r of routes) {
      let p = this.patterns.find(x => x.path === r.path)
      if (p === undefined) {
        if (!r.path.startsWith('/')) throw new Error(`route path must start with /: ${r.path}`)
        p = { path: r.path, segments: r.path.split('/').slice(1), byMethod: new Map() }
        this.patterns.push(p)
      }
      if (p.byMethod.has(r.method)) throw new Error(`route declared twice: ${r.method} ${r.path}`)
      p.byMethod.set(r.method, r)
    }
    // Fewer parameters first: a literal segment beats a parameter.
    const params = (p: Pattern): number => p.segments.filter(s => s.startsWith(':')).length
    this.patterns.sort((a, b) => params(a) - params(b))
  }

  /** The pattern a raw path matches, or undefined (404); throws 400 on bad percent-encoding. */
  find (pathname: string): { pattern: Pattern, params: Record<string, string> } | undefined {
    if (!pathname.startsWith('/')) return undefined
    let parts: string[]
    try {
      parts = pathname.split('/').slice(1).map(decodeURIComponent)
    } catch {
      throw badRequest('malformed URL encoding')
    }
    for (const pattern of this.patterns) {
      const params = matchSegments(pattern.segments, parts)
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

function matchSegments (pattern: string[], parts: string[]): Record<string, string> | undefined {
  if (parts.length !== pattern.length) return undefined
  const params: Record<string, string> = {}
  for (let i = 0; i < parts.length; i++) {
    const want = pattern[i]
    if (want.startsWith(':')) {
      if (parts[i] === '') return undefined
      params[want.slice(1)] = parts[i]
    } else if (want !== parts[i]) {
      return undefined
    }
  }
  return params
}
