#include "p2l/eval/summary.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>
#include <vector>

#include "p2l/error.h"
#include "p2l/eval/image_metrics.h"
#include "p2l/eval/results.h"
#include "p2l/eval/statistics.h"
#include "p2l/io/image.h"
#include "p2l/io/json_file.h"
#include "p2l/io/montage.h"
#include "p2l/metrics/emoji_features.h"
#include "p2l/metrics/feature_distances.h"
#include "p2l/pipelines/fit.h"

namespace p2l::eval {

namespace fs = std::filesystem;

namespace {

nlohmann::json stats_json(const std::vector<double>& values) {
  const auto s = mean_std(values);
  return {{"mean", s.mean}, {"std", s.std}};
}

const nlohmann::json* find_record(const std::map<std::string, nlohmann::json>& records,
                                  const std::string& key) {
  auto it = records.find(key);
  return it == records.end() ? nullptr : &it->second;
}

// Round-trips every double (summary.csv is for programs).
std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string fixed(double v, int precision) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", precision, v);
  return buf;
}

// A metric as recorded: JSON has no ∞ (PSNR of an exact restoration), which is written as null.
double recorded(const nlohmann::json& value) {
  return value.is_number() ? value.get<double>() : INFINITY;
}

std::string plus_minus(const nlohmann::json& stats, int precision) {
  return fixed(stats.at("mean").get<double>(), precision) + " ± " +
         fixed(stats.at("std").get<double>(), precision);
}

// A set metric: a number, or null (too few images) written as nothing.
std::string set_metric_text(const nlohmann::json& v) { return v.is_number() ? fixed(v, 2) : ""; }
std::string set_metric_number(const nlohmann::json& v) { return v.is_number() ? number(v) : ""; }

// The restorations that did not fit their measurement, by name, and how many could not be checked.
std::string misfit_section(const nlohmann::json& summary) {
  std::ostringstream md;
  const auto& misfits = summary.value("misfits", nlohmann::json::array());
  const double ratio = summary.value("misfit_ratio", pipelines::kMisfitRatio);
  if (!misfits.empty()) {
    md << "\nDid not fit the measurement (‖y − A(x)‖ over " << fixed(ratio, 1)
       << "× that of the autoencoded clean image, ‖y − A(D(E(x)))‖; counted in the means "
          "above):\n\n"
       << "| image | task | method | ‖y − A(x)‖ | ‖y − A(D(E(x)))‖ | ratio | PSNR (dB) |\n"
       << "|---|---|---|---|---|---|---|\n";
    for (const auto& m : misfits)
      md << "| " << m.at("image").get<std::string>() << " | " << m.at("task").get<std::string>()
         << " | " << m.at("label").get<std::string>() << " | " << fixed(m.at("data_residual"), 3)
         << " | " << fixed(m.at("reference_residual"), 3) << " | " << fixed(m.at("fit_ratio"), 2)
         << " | " << (m.at("psnr").is_number() ? fixed(m.at("psnr"), 2) : "∞") << " |\n";
  }
  const auto unchecked = summary.value("fit_unchecked", int64_t{0});
  if (unchecked > 0)
    md << "\n"
       << unchecked
       << " finished jobs were recorded without the fit check (an older build): `p2l eval "
          "--summarize DIR -m MODEL`, with the model they ran on, adds it.\n";
  return md.str();
}

// A mean count: whole numbers without decimals.
std::string count_text(double v) { return v == std::floor(v) ? fixed(v, 0) : fixed(v, 1); }

}  // namespace

nlohmann::json summarize(const Plan& plan, const std::map<std::string, nlohmann::json>& records) {
  auto tasks = nlohmann::json::array();
  int64_t finished = 0, diverged = 0, unchecked = 0;
  auto misfits = nlohmann::json::array();
  for (const auto& task : plan.tasks) {
    // The naive reconstruction is the same for every method: once per image, from the first
    // method that has a record of it.
    std::map<std::string, std::vector<double>> naive;
    int64_t naive_images = 0;
    for (const auto& image : plan.images) {
      const nlohmann::json* found = nullptr;
      for (const auto& method : plan.methods) {
        const auto* r = find_record(records, image.name + "|" + task + "|" + method.label);
        if (r && r->contains("naive_" + plan.metrics.front())) {
          found = r;
          break;
        }
      }
      if (!found) continue;
      ++naive_images;
      for (const auto& metric : plan.metrics)
        naive[metric].push_back(recorded(found->at("naive_" + metric)));
    }
    nlohmann::json naive_json = {{"n", naive_images}};
    for (const auto& metric : plan.metrics) naive_json[metric] = stats_json(naive[metric]);

    auto methods = nlohmann::json::array();
    for (const auto& method : plan.methods) {
      std::map<std::string, std::vector<double>> values;
      std::map<std::string, std::vector<double>> counts;
      int64_t ok = 0, failed = 0, unfit = 0;
      for (const auto& image : plan.images) {
        const auto* r = find_record(records, image.name + "|" + task + "|" + method.label);
        if (!r) continue;
        if (r->at("status") != "ok") {
          ++failed;
          continue;
        }
        ++ok;
        // Counted among the finished (its image is what the method gave) and named below.
        if (const auto ratio = fit_ratio(*r)) {
          if (*ratio > pipelines::kMisfitRatio) {
            ++unfit;
            misfits.push_back({{"image", image.name},
                               {"task", task},
                               {"label", method.label},
                               {"fit_ratio", *ratio},
                               {"data_residual", r->at("data_residual")},
                               {"reference_residual", r->at("reference_residual")},
                               {"psnr", r->contains("psnr") ? r->at("psnr") : nlohmann::json()}});
          }
        } else {
          ++unchecked;
        }
        for (const auto& metric : plan.metrics) values[metric].push_back(recorded(r->at(metric)));
        values["data_residual"].push_back(r->at("data_residual").get<double>());
        values["seconds"].push_back(r->at("seconds").get<double>());
        for (const auto& [name, count] : r->at("network_evaluations").items())
          counts[name].push_back(count.get<double>());
      }
      finished += ok;
      diverged += failed;
      nlohmann::json row = {{"label", method.label},
                            {"method", method.method},
                            {"overrides", method.to_json()["overrides"]},
                            {"n", ok},
                            {"diverged", failed},
                            {"misfit", unfit}};
      for (const auto& metric : plan.metrics) row[metric] = stats_json(values[metric]);
      row["data_residual"] = stats_json(values["data_residual"]);
      auto evaluations = nlohmann::json::object();
      for (const auto& [name, v] : counts) evaluations[name] = mean_std(v).mean;
      row["network_evaluations"] = evaluations;
      row["seconds"] = stats_json(values["seconds"]);
      methods.push_back(row);
    }
    tasks.push_back({{"task", task}, {"naive", naive_json}, {"methods", methods}});
  }
  return {{"format", "p2l-eval-summary"},
          {"version", 1},
          {"model", plan.model},
          {"noise", plan.noise},
          {"seed", plan.seed},
          {"steps", plan.steps},
          {"metrics", plan.metrics},
          {"jobs", plan.images.size() * plan.tasks.size() * plan.methods.size()},
          {"finished", finished},
          {"diverged", diverged},
          {"misfit_ratio", pipelines::kMisfitRatio},
          {"misfit", misfits.size()},
          {"fit_unchecked", unchecked},
          {"misfits", misfits},
          {"tasks", tasks}};
}

void add_set_metrics(nlohmann::json& summary, const std::string& folder, const Plan& plan,
                     const std::map<std::string, nlohmann::json>& records) {
  const auto network_path = fs::path(plan.model) / "fd_emoji";
  if (!fs::exists(network_path)) return;
  auto net = metrics::load_emoji_feature_net(network_path.string());
  torch::NoGradGuard no_grad;
  // A run's summary must not depend on the process that writes it: a sharded run is merged by
  // another process than a single run, with another thread count, and MKL's convolutions round
  // differently per thread count (FD-emoji moved in its 6th digit on a 16-core machine). The
  // small feature network runs on one thread.
  struct OneThread {
    int before = at::get_num_threads();
    OneThread() { at::set_num_threads(1); }
    ~OneThread() { at::set_num_threads(before); }
  } one_thread;
  std::map<std::string, torch::Tensor> clean_features;  // by image name, computed once
  auto features_of = [&](const fs::path& path) {
    return net->features(io::load_image(path.string()));
  };
  auto clean = [&](const EvalImage& image) {
    auto& f = clean_features[image.name];
    if (!f.defined()) f = features_of(image.path);
    return f;
  };
  // FD between the images and the clean images of the same jobs; null below 2 pairs.
  auto distance = [](const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
    return a.size() < 2 ? nlohmann::json(nullptr)
                        : nlohmann::json(metrics::frechet_distance(torch::cat(a), torch::cat(b)));
  };
  const fs::path dir(folder);
  auto& tasks = summary.at("tasks");
  for (size_t t = 0; t < plan.tasks.size(); ++t) {
    const auto& task = plan.tasks[t];
    std::vector<torch::Tensor> naive, naive_clean;
    std::vector<std::vector<torch::Tensor>> restored(plan.methods.size()),
        restored_clean(plan.methods.size());
    for (const auto& image : plan.images) {
      bool naive_done = false;
      for (size_t m = 0; m < plan.methods.size(); ++m) {
        const auto* r = find_record(records, image.name + "|" + task + "|" + plan.methods[m].label);
        if (!r) continue;
        if (!naive_done && r->contains("naive_image")) {
          naive.push_back(features_of(dir / r->at("naive_image").get<std::string>()));
          naive_clean.push_back(clean(image));
          naive_done = true;
        }
        if (r->at("status") != "ok") continue;
        restored[m].push_back(features_of(dir / r->at("output").get<std::string>()));
        restored_clean[m].push_back(clean(image));
      }
    }
    tasks[t]["naive"]["fd_emoji"] = distance(naive, naive_clean);
    for (size_t m = 0; m < plan.methods.size(); ++m)
      tasks[t]["methods"][m]["fd_emoji"] = distance(restored[m], restored_clean[m]);
  }
  summary["set_metrics"] = {"fd_emoji"};
}

std::string write_summary(const std::string& folder, const nlohmann::json& summary) {
  const auto metric_names = summary.at("metrics").get<std::vector<std::string>>();
  std::vector<ImageMetric> metrics;
  for (const auto& name : metric_names) metrics.push_back(describe_image_metric(name));
  // Network counters: the known ones in pipeline order with short headings, any other after them
  // under its own name (JSON objects come sorted by name).
  static const std::vector<std::pair<std::string, std::string>> kKnownCounters = {
      {"unet_forward", "UNet fwd"},   {"unet_backward", "UNet bwd"},
      {"decoder_forward", "dec fwd"}, {"decoder_backward", "dec bwd"},
      {"encoder_forward", "enc fwd"}, {"encoder_backward", "enc bwd"},
      {"operator_forward", "A fwd"}};
  std::set<std::string> present;
  for (const auto& task : summary.at("tasks"))
    for (const auto& row : task.at("methods"))
      for (const auto& [name, value] : row.at("network_evaluations").items()) present.insert(name);
  std::vector<std::string> counters, counter_titles;
  for (const auto& [name, title] : kKnownCounters)
    if (present.erase(name)) counters.push_back(name), counter_titles.push_back(title);
  for (const auto& name : present) counters.push_back(name), counter_titles.push_back(name);

  std::ostringstream md, csv;
  md << "# Evaluation of " << fs::path(summary.at("model").get<std::string>()).filename().string()
     << "\n\nσ_y = " << summary.at("noise").get<double>() << ", seed "
     << summary.at("seed").get<uint64_t>() << ", steps "
     << (summary.at("steps").get<int64_t>() > 0 ? std::to_string(summary.at("steps").get<int64_t>())
                                                : std::string("(each method's default)"))
     << "; " << summary.at("finished").get<int64_t>() << " of " << summary.at("jobs").get<int64_t>()
     << " jobs finished, " << summary.at("diverged").get<int64_t>() << " diverged, "
     << summary.value("misfit", 0)
     << " did not fit their measurement. Mean ± std over the images; network evaluations per "
        "image.\n\n";
  md << "| task | method | n |";
  for (const auto& m : metrics) md << " " << m.title << " |";
  // Set metrics (FD-emoji) when the summary has them.
  const bool fd = summary.contains("set_metrics");
  if (fd) md << " FD-emoji ↓ |";
  md << " ‖y − A(x)‖ |";
  for (const auto& title : counter_titles) md << " " << title << " |";
  md << " s / image |\n|---|---|---|";
  for (size_t i = 0; i < metrics.size() + fd + 1 + counters.size() + 1; ++i) md << "---|";
  md << "\n";
  csv << "task,label,method,n,diverged,misfit";
  for (const auto& m : metrics) csv << "," << m.name << "_mean," << m.name << "_std";
  if (fd) csv << ",fd_emoji";
  csv << ",data_residual_mean,data_residual_std";
  for (const auto& c : counters) csv << "," << c;
  csv << ",seconds_mean,seconds_std\n";

  for (const auto& task_json : summary.at("tasks")) {
    const auto task = task_json.at("task").get<std::string>();
    const auto& naive = task_json.at("naive");
    const auto naive_n = naive.at("n").get<int64_t>();
    md << "| " << task << " | (naive) | " << naive_n << " |";
    csv << task << ",naive,naive," << naive_n << ",0,0";
    for (const auto& m : metrics) {
      if (naive_n == 0) {  // no finished job: blank, not zeros
        md << "  |";
        csv << ",,";
        continue;
      }
      md << " " << plus_minus(naive.at(m.name), m.precision) << " |";
      csv << "," << number(naive.at(m.name).at("mean")) << ","
          << number(naive.at(m.name).at("std"));
    }
    if (fd) {
      md << " " << set_metric_text(naive.at("fd_emoji")) << " |";
      csv << "," << set_metric_number(naive.at("fd_emoji"));
    }
    md << " |";
    csv << ",,";
    for (size_t i = 0; i < counters.size(); ++i) md << " |", csv << ",";
    md << " |\n";
    csv << ",,\n";
    for (const auto& row : task_json.at("methods")) {
      const auto n = row.at("n").get<int64_t>();
      const auto failed = row.at("diverged").get<int64_t>();
      const auto unfit = row.value("misfit", int64_t{0});  // summaries from before the fit check
      md << "| " << task << " | " << row.at("label").get<std::string>() << " | " << n;
      if (failed > 0 && unfit > 0)
        md << " (" << failed << " diverged, " << unfit << " did not fit)";
      else if (failed > 0)
        md << " (" << failed << " diverged)";
      else if (unfit > 0)
        md << " (" << unfit << " did not fit)";
      md << " |";
      csv << task << "," << row.at("label").get<std::string>() << ","
          << row.at("method").get<std::string>() << "," << n << "," << failed << "," << unfit;
      for (const auto& m : metrics) {
        md << " " << (n ? plus_minus(row.at(m.name), m.precision) : "") << " |";
        csv << "," << (n ? number(row.at(m.name).at("mean")) : "") << ","
            << (n ? number(row.at(m.name).at("std")) : "");
      }
      if (fd) {
        md << " " << set_metric_text(row.at("fd_emoji")) << " |";
        csv << "," << set_metric_number(row.at("fd_emoji"));
      }
      md << " " << (n ? plus_minus(row.at("data_residual"), 4) : "") << " |";
      csv << "," << (n ? number(row.at("data_residual").at("mean")) : "") << ","
          << (n ? number(row.at("data_residual").at("std")) : "");
      for (const auto& c : counters) {
        const auto& evaluations = row.at("network_evaluations");
        const bool has = evaluations.contains(c);
        md << " " << (has ? count_text(evaluations.at(c)) : "") << " |";
        csv << "," << (has ? number(evaluations.at(c)) : "");
      }
      md << " " << (n ? plus_minus(row.at("seconds"), 2) : "") << " |\n";
      csv << "," << (n ? number(row.at("seconds").at("mean")) : "") << ","
          << (n ? number(row.at("seconds").at("std")) : "") << "\n";
    }
  }
  md << misfit_section(summary);
  io::write_json((fs::path(folder) / "summary.json").string(), summary);
  io::write_text((fs::path(folder) / "summary.md").string(), md.str());
  io::write_text((fs::path(folder) / "summary.csv").string(), csv.str());
  return md.str();
}

std::vector<torch::Tensor> montage_row(const std::string& folder, const Plan& plan,
                                       const std::map<std::string, nlohmann::json>& records,
                                       const EvalImage& image, const std::string& task) {
  const fs::path dir(folder);
  auto load = [&](const fs::path& path) {
    return fs::exists(path) ? io::load_image(path.string()) : torch::Tensor();
  };
  std::vector<torch::Tensor> row(3 + plan.methods.size());
  bool any = false;
  for (size_t m = 0; m < plan.methods.size(); ++m) {
    const auto* r = find_record(records, image.name + "|" + task + "|" + plan.methods[m].label);
    if (!r) continue;
    if (!any) {
      row[0] = load(image.path);
      row[1] = load(dir / r->at("measurement_image").get<std::string>());
      row[2] = load(dir / r->at("naive_image").get<std::string>());
      any = true;
    }
    if (r->at("status") == "ok") row[3 + m] = load(dir / r->at("output").get<std::string>());
  }
  return any ? row : std::vector<torch::Tensor>{};
}

void write_montages(const std::string& folder, const Plan& plan,
                    const std::map<std::string, nlohmann::json>& records) {
  for (const auto& task : plan.tasks) {
    std::vector<std::vector<torch::Tensor>> rows;
    for (const auto& image : plan.images) {
      auto row = montage_row(folder, plan, records, image, task);
      if (!row.empty()) rows.push_back(row);
    }
    if (!rows.empty())
      io::save_png((fs::path(folder) / ("montage_" + task + ".png")).string(), io::montage(rows));
  }
}

}  // namespace p2l::eval
