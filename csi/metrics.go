package csi

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// scrapeTimeout bounds the scrape of one mount.
const scrapeTimeout = 5 * time.Second

// MetricsHandler serves, at one address, the metrics of every mount the
// driver made: it scrapes each mount's own --metrics-addr (a loopback
// port of the driver's pod) and adds the labels volume_id and target, so
// one Prometheus scrape of the driver pod sees every mount of the node.
// bucketfs_csi_mounts counts the mounts, bucketfs_csi_scrape_errors_total
// the mounts that did not answer.
func (d *Driver) MetricsHandler() http.Handler {
	client := &http.Client{Timeout: scrapeTimeout}
	var mu sync.Mutex
	var scrapeErrors float64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		recs, err := d.st.all()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		sort.Slice(recs, func(i, j int) bool { return recs[i].Target < recs[j].Target })
		fams := map[string]*dto.MetricFamily{}
		var wg sync.WaitGroup
		results := make([]map[string]*dto.MetricFamily, len(recs))
		for i, rec := range recs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, err := scrape(r.Context(), client, rec.MetricsAddr)
				if err != nil {
					mu.Lock()
					scrapeErrors++
					mu.Unlock()
					d.log.Warn("scraping a mount's metrics failed", "volume", rec.VolumeID, "target", rec.Target, "err", err)
					return
				}
				results[i] = m
			}()
		}
		wg.Wait()
		for i, rec := range recs {
			for name, f := range results[i] {
				labels := []*dto.LabelPair{
					{Name: proto.String("volume_id"), Value: proto.String(rec.VolumeID)},
					{Name: proto.String("target"), Value: proto.String(rec.Target)},
				}
				for _, m := range f.Metric {
					m.Label = append(m.Label, labels...)
				}
				if have, ok := fams[name]; ok && have.GetType() == f.GetType() {
					have.Metric = append(have.Metric, f.Metric...)
				} else if !ok {
					fams[name] = f
				}
			}
		}
		mu.Lock()
		errs := scrapeErrors
		mu.Unlock()
		gauge := func(name, help string, t dto.MetricType, v float64) {
			m := &dto.Metric{}
			if t == dto.MetricType_GAUGE {
				m.Gauge = &dto.Gauge{Value: proto.Float64(v)}
			} else {
				m.Counter = &dto.Counter{Value: proto.Float64(v)}
			}
			fams[name] = &dto.MetricFamily{Name: proto.String(name), Help: proto.String(help), Type: t.Enum(), Metric: []*dto.Metric{m}}
		}
		gauge("bucketfs_csi_mounts", "Mounts the driver made on this node.", dto.MetricType_GAUGE, float64(len(recs)))
		gauge("bucketfs_csi_scrape_errors_total", "Scrapes of a mount's metrics that failed.", dto.MetricType_COUNTER, errs)
		names := make([]string, 0, len(fams))
		for n := range fams {
			names = append(names, n)
		}
		sort.Strings(names)
		format := expfmt.NewFormat(expfmt.TypeTextPlain)
		w.Header().Set("Content-Type", string(format))
		enc := expfmt.NewEncoder(w, format)
		for _, n := range names {
			if err := enc.Encode(fams[n]); err != nil {
				d.log.Warn("encoding metrics failed", "family", n, "err", err)
				return
			}
		}
	})
}

func scrape(ctx context.Context, client *http.Client, addr string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s says %s", addr, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}
