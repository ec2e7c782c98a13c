import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

/**
 * The 24-hour chart: requests answered by legacy and by new upstreams per
 * hour (stacked bars read as areas), drawn by uPlot on a canvas. Colours come
 * from the page's CSS variables, so it follows light and dark mode.
 */
export function ShareChart(props: { hours: Array<{ hour: string; legacy: number; new: number }> }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    const el = box.current!;
    const css = getComputedStyle(document.documentElement);
    const color = (name: string) => css.getPropertyValue(name).trim() || '#888';
    const x = props.hours.map((h) => Date.parse(h.hour) / 1000);
    const legacy = props.hours.map((h) => h.legacy);
    const total = props.hours.map((h) => h.legacy + h.new);
    const data: uPlot.AlignedData = [x, total, legacy];
    if (plot.current === null) {
      plot.current = new uPlot(
        {
          width: Math.max(320, el.clientWidth),
          height: 220,
          legend: { show: true },
          axes: [{ stroke: color('--fg') }, { stroke: color('--fg'), label: 'requests per hour' }],
          series: [
            {},
            { label: 'all requests (the band above legacy is new services)', stroke: color('--new'), fill: color('--new-fill'), width: 2 },
            { label: 'legacy', stroke: color('--legacy'), fill: color('--legacy-fill'), width: 2 },
          ],
        },
        data,
        el,
      );
      const resize = () => plot.current?.setSize({ width: Math.max(320, el.clientWidth), height: 220 });
      addEventListener('resize', resize);
      return () => {
        removeEventListener('resize', resize);
        plot.current?.destroy();
        plot.current = null;
      };
    }
    plot.current.setData(data);
    return undefined;
  }, [props.hours]);
  return <div ref={box} class="chart" role="img" aria-label="Requests per hour over the last 24 hours, legacy and new" />;
}
