/**
 * A proxy auto-config file that sends only `*.<suffix>` hosts (content ids as
 * host names) through this proxy and everything else DIRECT, so pointing a
 * browser at it changes nothing for the rest of the web.
 */
export function pacFile (suffix: string, proxyHostPort: string): string {
  const s = JSON.stringify(`.${suffix.toLowerCase()}`)
  return `function FindProxyForURL(url, host) {
  host = host.toLowerCase();
  if (dnsDomainIs(host, ${s}) && host.length > ${s}.length) return "PROXY ${proxyHostPort}";
  return "DIRECT";
}
`
}
