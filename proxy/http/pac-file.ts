/**
 * A proxy auto-config file that sends only `*.<suffix>` hosts (content ids as
 * host names) through this proxy and everything else DIRECT, so pointing a
 * browser at it changes nothing for the rest of the web.
 */
export function pacFile (suffix: string, proxyHostPort: string): string {
  // The address comes from a Host header: only host:port characters may reach the script.
  const where = /^[A-Za-z0-9.\-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$/.test(proxyHostPort) ? proxyHostPort : '127.0.0.1:8080'
  const s = JSON.stringify(`.${suffix.toLowerCase()}`)
  return `function FindProxyForURL(url, host) {
  host = host.toLowerCase();
  if (dnsDomainIs(host, ${s}) && host.length > ${s}.length) return "PROXY ${where}";
  return "DIRECT";
}
`
}
