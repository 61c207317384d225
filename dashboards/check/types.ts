// The type every dashboards/*.json must satisfy (check.sh wraps each file in
// `(<JSON>) satisfies StrictDashboard` and runs tsc --strict on it).
//
// It is @grafana/schema's `Dashboard` (the classic dashboard JSON model, what
// Grafana exports and imports), made stricter in three ways and looser in none:
//
// 1. `Json<T>`: the schema declares closed string sets as TypeScript string
//    enums (ThresholdsMode, FieldColorModeId, MappingType, BigValueColorMode…).
//    A JSON string can never be assigned to an enum type, so `Json<T>` turns
//    each string enum into the union of its values ("absolute" | "percentage"):
//    the same set of accepted values, spelled the way JSON spells them.
//    Numeric enums (VariableRefresh, DashboardCursorSync…) accept plain numbers
//    already and are kept.
// 2. Panels: `Panel.options` and `fieldConfig.defaults.custom` are
//    `Record<string, unknown>` in `Dashboard`; here each panel type is tied to
//    its plugin's generated `Options` / `FieldConfig` (the panelcfg types in
//    @grafana/schema), so misspelled or missing options are errors too. Only
//    the panel types listed in `StrictPanel` are allowed.
// 3. Queries: `Panel.targets` is `Array<Record<string, unknown>>` in
//    `Dashboard`. @grafana/schema has no Prometheus or Loki query type (they live
//    in the plugins), so `PromQuery` and `LokiQuery` below extend the schema's
//    `DataQuery` with the fields Grafana's Prometheus and Loki plugins save (their
//    dataquery.cue). Every panel needs at least one, on the `${datasource}`
//    datasource (the dashboard's `datasource` variable): a Prometheus, or a Loki
//    for the panels that read log records (time series and logs panels only).
//
// Object literals checked against these types get excess-property checks: a
// key the schema does not know is an error, not silently ignored.

import type {
  Dashboard,
  DataQuery,
  FieldConfig,
  FieldConfigSource,
  GridPos,
  Panel,
  RowPanel,
  VariableModel,
} from '@grafana/schema';
import type * as BarGauge from '@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen';
import type * as Logs from '@grafana/schema/dist/esm/raw/composable/logs/panelcfg/x/LogsPanelCfg_types.gen';
import type * as Heatmap from '@grafana/schema/dist/esm/raw/composable/heatmap/panelcfg/x/HeatmapPanelCfg_types.gen';
import type * as PieChart from '@grafana/schema/dist/esm/raw/composable/piechart/panelcfg/x/PieChartPanelCfg_types.gen';
import type * as Stat from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type * as Table from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';
import type * as TimeSeries from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';

type IsAny<T> = 0 extends 1 & T ? true : false;

/** `T` as JSON spells it: string enums become their string values, recursively. */
export type Json<T> =
  IsAny<T> extends true
    ? T
    : T extends string
      ? `${T}`
      : T extends number | boolean | bigint | symbol | null | undefined
        ? T
        : T extends readonly (infer U)[]
          ? Json<U>[]
          : T extends object
            ? { [K in keyof T]: Json<T[K]> }
            : T;

/** The Prometheus chosen in the dashboard's `datasource` variable (type `datasource`). */
export type PrometheusRef = {
  type: 'prometheus';
  uid: '${datasource}';
};

/**
 * A Prometheus query as Grafana's Prometheus plugin saves it. A type alias, not an
 * interface: `Panel.targets` wants `Record<string, unknown>`, which interfaces never are.
 */
export type PromQuery = Omit<DataQuery, 'datasource'> & {
  datasource: PrometheusRef;
  /** The PromQL expression. */
  expr: string;
  editorMode?: 'code' | 'builder';
  exemplar?: boolean;
  format?: 'time_series' | 'table' | 'heatmap';
  instant?: boolean;
  interval?: string;
  intervalFactor?: number;
  legendFormat?: string;
  range?: boolean;
};

/** The Loki chosen in the dashboard's `datasource` variable (type `datasource`). */
export type LokiRef = {
  type: 'loki';
  uid: '${datasource}';
};

/** A Loki query as Grafana's Loki plugin saves it (a type alias, as `PromQuery`). */
export type LokiQuery = Omit<DataQuery, 'datasource' | 'queryType'> & {
  datasource: LokiRef;
  /** The LogQL expression. */
  expr: string;
  queryType?: 'range' | 'instant' | 'stream';
  editorMode?: 'code' | 'builder';
  legendFormat?: string;
  maxLines?: number;
  resolution?: number;
  step?: string;
  direction?: 'forward' | 'backward' | 'scan';
};

/** Field defaults whose `custom` part is the panel plugin's own FieldConfig. */
type FieldConfigOf<Custom> = {
  defaults: Omit<Json<FieldConfig>, 'custom'> & { custom?: Json<Custom> };
  overrides: Json<FieldConfigSource['overrides']>;
};

/** No plugin-specific field config (stat and bar gauge have none). */
type NoCustom = Record<string, never>;

type PanelOf<Type extends string, Options, Custom, Ref = PrometheusRef, Query = PromQuery> = Omit<
  Json<Panel>,
  'type' | 'options' | 'fieldConfig' | 'targets' | 'datasource' | 'id' | 'gridPos' | 'title' | 'description'
> & {
  type: Type;
  id: number;
  gridPos: Json<GridPos>;
  title: string;
  description: string;
  datasource: Ref;
  targets: [Query, ...Query[]];
  options: Json<Options>;
  fieldConfig: FieldConfigOf<Custom>;
};

export type StrictPanel =
  | PanelOf<'timeseries', TimeSeries.Options, TimeSeries.FieldConfig>
  | PanelOf<'stat', Stat.Options, NoCustom>
  | PanelOf<'bargauge', BarGauge.Options, NoCustom>
  | PanelOf<'table', Table.Options, Table.FieldConfig>
  | PanelOf<'heatmap', Heatmap.Options, Heatmap.FieldConfig>
  | PanelOf<'piechart', PieChart.Options, PieChart.FieldConfig>
  | PanelOf<'timeseries', TimeSeries.Options, TimeSeries.FieldConfig, LokiRef, LokiQuery>
  | PanelOf<'logs', Logs.Options, NoCustom, LokiRef, LokiQuery>;

export type StrictRow = Omit<Json<RowPanel>, 'panels' | 'id' | 'gridPos' | 'title'> & {
  id: number;
  gridPos: Json<GridPos>;
  title: string;
  panels: StrictPanel[];
};

type StrictVariable = Omit<Json<VariableModel>, 'datasource'> & { datasource?: PrometheusRef | LokiRef };

export type StrictDashboard = Omit<Json<Dashboard>, 'panels' | 'templating' | 'uid' | 'title' | 'description' | 'tags'> & {
  uid: string;
  title: string;
  description: string;
  tags: string[];
  templating: { list: StrictVariable[] };
  panels: Array<StrictPanel | StrictRow>;
};

// Stricter, never looser: whatever passes StrictDashboard is a schema `Dashboard` (in JSON spelling).
type Assert<T extends true> = T;
export type StrictDashboardIsADashboard = Assert<StrictDashboard extends Json<Dashboard> ? true : false>;
