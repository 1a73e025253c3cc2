// C++ consumer: uses both the stable C API and the cxx-generated C++ API.
#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "brainsam.hpp"

// Fine-tunes with the configuration at `config_path` to the end and saves the model
// (compiled here; run when the consumer gets a configuration argument).
static bool fine_tune(const std::string& config_path, const std::string& model_path) {
  brainsam::FineTuneOptions options;
  options.resume = false;
  rust::Box<brainsam::FineTune> run = brainsam::start_fine_tune(config_path, options);
  brainsam::FineTuneStatus status = run->progress();
  while (status.state == brainsam::FineTuneState::Running) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    status = run->progress();
  }
  if (run->wait() != brainsam::FineTuneState::Finished || !std::isfinite(status.loss)) {
    return false;
  }
  run->save(brainsam::FineTuneOutput::Model, model_path);
  std::cout << "fine-tuned " << status.iteration << " iterations\n";
  return true;
}

// A phantom head (40^3 voxels of 4 mm, RAS) with two bright blobs labelled as the
// FreeSurfer thalami (10 left, 49 right); `shift` moves the blobs a little.
static void phantom(double shift, brainsam::VolumeGeometry& geometry, std::vector<float>& image,
                    std::vector<float>& labels) {
  const int n = 40;
  const double spacing = 4.0, origin = -spacing * (n - 1) / 2.0;
  geometry.dims = {n, n, n};
  geometry.spacing = {spacing, spacing, spacing};
  geometry.origin = {origin, origin, origin};
  geometry.direction = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  geometry.coordinates = brainsam::Coordinates::Ras;
  image.assign(n * n * n, 0.0f);
  labels.assign(n * n * n, 0.0f);
  for (int k = 0; k < n; ++k) {
    for (int j = 0; j < n; ++j) {
      for (int i = 0; i < n; ++i) {
        const double x = origin + spacing * i, y = origin + spacing * j, z = origin + spacing * k;
        const std::size_t index = i + n * (j + n * static_cast<std::size_t>(k));
        if ((x / 70) * (x / 70) + (y / 82) * (y / 82) + (z / 75) * (z / 75) > 1.0) continue;
        image[index] = 100.0f + static_cast<float>((i * 7 + j * 13 + k * 5) % 11);
        for (const double side : {-1.0, 1.0}) {
          const double dx = x - side * (14 + shift), dy = y + 4 - shift, dz = z + 8;
          if (dx * dx + dy * dy + dz * dz <= 15.0 * 15.0) {
            image[index] += 40.0f;
            labels[index] = side < 0 ? 10.0f : 49.0f;
          }
        }
      }
    }
  }
}

// Adapts the model at `checkpoint` to two phantom pairs through the C++ API, saves the
// adapter, and loads it on its base; bad pairs throw messages naming the problem.
static bool adapt(const std::string& checkpoint, const std::string& adapter_path) {
  brainsam::ModelOptions model_options{checkpoint, "", brainsam::Device::Cpu, 0,
                                       brainsam::Precision::Fp32};
  rust::Box<brainsam::Model> model = brainsam::load_model(model_options);
  rust::Box<brainsam::AdaptPairs> pairs = brainsam::new_adapt_pairs();
  brainsam::VolumeGeometry geometry;
  std::vector<float> image, labels;
  phantom(0.0, geometry, image, labels);
  pairs->add("first", geometry, rust::Slice<const float>(image.data(), image.size()),
             rust::Slice<const float>(labels.data(), labels.size()), "freesurfer");
  try {
    pairs->add("short", geometry, rust::Slice<const float>(image.data(), image.size()),
               rust::Slice<const float>(labels.data(), labels.size() - 1), "freesurfer");
    std::cerr << "a short label buffer was accepted\n";
    return false;
  } catch (const rust::Error& error) {
    if (std::string(error.what()).find("label buffer") == std::string::npos) {
      std::cerr << "unexpected message: " << error.what() << "\n";
      return false;
    }
  }
  try {
    pairs->add("", geometry, rust::Slice<const float>(image.data(), image.size()),
               rust::Slice<const float>(labels.data(), labels.size()), "no-such-scheme");
    std::cerr << "an unknown label scheme was accepted\n";
    return false;
  } catch (const rust::Error& error) {
    if (std::string(error.what()).find("no-such-scheme") == std::string::npos) {
      std::cerr << "unexpected message: " << error.what() << "\n";
      return false;
    }
  }
  phantom(4.0, geometry, image, labels);
  pairs->add("second", geometry, rust::Slice<const float>(image.data(), image.size()),
             rust::Slice<const float>(labels.data(), labels.size()), "freesurfer");
  if (pairs->len() != 2) {
    std::cerr << "expected 2 pairs, have " << pairs->len() << "\n";
    return false;
  }
  brainsam::AdaptOptions options{3, 0.0, 0.003, 5, "cpu"};
  rust::Box<brainsam::Adapt> run = model->start_adapt(*pairs, options);
  brainsam::AdaptStatus status = run->progress();
  while (status.state == brainsam::FineTuneState::Running) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    status = run->progress();
  }
  if (run->wait() != brainsam::FineTuneState::Finished || status.iteration != 3 ||
      status.total != 3 || !std::isfinite(status.loss) ||
      !std::isfinite(status.best_validation_dice)) {
    std::cerr << "adaptation did not finish: state " << static_cast<int>(status.state)
              << ", iteration " << status.iteration << ", " << std::string(status.error_message)
              << "\n";
    return false;
  }
  run->save(adapter_path);
  model_options.adapter_path = adapter_path;
  rust::Box<brainsam::Model> adapted = brainsam::load_model(model_options);
  adapted->create_session();
  std::cout << "adapted " << status.iteration << " iterations, validation Dice "
            << status.best_validation_dice << "\n";
  return true;
}

int main(int argc, char** argv) {
  // The C++ API and the C API report the same library.
  const std::string cxx_version(brainsam::version());
  if (cxx_version != brainsam_version() || cxx_version != BRAINSAM_VERSION) {
    std::cerr << "version mismatch: " << cxx_version << " vs " << brainsam_version() << "\n";
    return 1;
  }
  if (brainsam::abi_version() != BRAINSAM_ABI_VERSION) {
    std::cerr << "ABI version mismatch\n";
    return 1;
  }
  const brainsam::RuntimeInfo info = brainsam::runtime_info();
  const std::string torch(info.libtorch_version);
  if (torch.rfind("2.11.0", 0) != 0) {
    std::cerr << "unexpected libtorch version " << torch << "\n";
    return 1;
  }
  std::cout << "brainsam " << cxx_version << " via C++, libtorch " << torch << ", cuda "
            << (info.cuda_available ? "yes" : "no") << "\n";
  // Device and precision names parse in the library, as on its command line.
  const brainsam::DeviceSpec device = brainsam::parse_device(" CUDA:1");
  if (device.device != brainsam::Device::Cuda || device.device_index != 1 ||
      brainsam::parse_precision("half") != brainsam::Precision::Fp16) {
    std::cerr << "device or precision names parsed wrongly\n";
    return 1;
  }
  try {
    brainsam::parse_device("tpu");
    std::cerr << "an unknown device name was accepted\n";
    return 1;
  } catch (const rust::Error& error) {
    if (std::string(error.what()).find("cuda:N") == std::string::npos) {
      std::cerr << "unexpected message: " << error.what() << "\n";
      return 1;
    }
  }
  // Fine-tuning errors arrive as exceptions naming the problem.
  try {
    brainsam::start_fine_tune("/nonexistent/run.toml", brainsam::FineTuneOptions{false});
    std::cerr << "a missing configuration was accepted\n";
    return 1;
  } catch (const rust::Error& error) {
    if (std::string(error.what()).find("/nonexistent/run.toml") == std::string::npos) {
      std::cerr << "unexpected message: " << error.what() << "\n";
      return 1;
    }
  }
  // consumer_cxx CHECKPOINT ADAPTER_OUT: adapt; consumer_cxx CONFIG.toml MODEL_OUT: fine-tune.
  const bool adapting = argc == 3 && std::string(argv[1]).find(".toml") == std::string::npos;
  if (adapting && !adapt(argv[1], argv[2])) {
    std::cerr << "adaptation through the C++ API failed\n";
    return 1;
  }
  if (argc == 3 && !adapting && !fine_tune(argv[1], argv[2])) {
    std::cerr << "fine-tuning did not finish\n";
    return 1;
  }
  std::cout << "c++ consumer: ok\n";
  return 0;
}
