// BrainSAM C++ API example: segment a volume held in memory, refine one structure with
// prompts, and read the results. Usage: segment CHECKPOINT
//
// The volume here is a synthetic head so that the example runs anywhere; in an
// application the buffer and its geometry come from your image reader (see
// examples/itk for ITK).
#include <array>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "brainsam.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " CHECKPOINT\n";
    return 2;
  }
  try {
    std::cout << "BrainSAM " << std::string(brainsam::version()) << "\n";

    // 1. Load the model; sessions share it (rust::Box frees it when it goes out of scope,
    //    and each session keeps its own reference).
    brainsam::ModelOptions options{};  // {}: every field not set below takes its default
    options.checkpoint_path = argv[1];
    options.device = brainsam::Device::Auto;
    rust::Box<brainsam::Model> model = brainsam::load_model(options);
    // Zero options are the defaults: batches sized to the device, mirror and shift
    // averaging and clean-up on (create_session() is the same).
    brainsam::SessionOptions session_options{};
    rust::Box<brainsam::Session> session = model->create_session_with_options(session_options);

    // 2. The voxels (i fastest) and their geometry: 2 mm voxels, RAS coordinates.
    const int ni = 80, nj = 96, nk = 88;
    std::vector<float> voxels(static_cast<std::size_t>(ni) * nj * nk);
    for (int k = 0; k < nk; k++)
      for (int j = 0; j < nj; j++)
        for (int i = 0; i < ni; i++) {
          const double x = (i - 40) * 2.0, y = (j - 48) * 2.0, z = (k - 40) * 2.0;
          const double head = x * x / 4900.0 + y * y / 8100.0 + z * z / 5625.0;
          const double blob = (x - 20) * (x - 20) + y * y + (z + 5) * (z + 5);
          const double blob2 = (x + 20) * (x + 20) + y * y + (z + 5) * (z + 5);
          float value = head < 1.0 ? 100.0f : 0.0f;
          if (blob < 100.0 || blob2 < 100.0) value = 160.0f;
          voxels[i + ni * (j + nj * k)] = value + static_cast<float>((i * 7 + j * 13 + k * 17) % 11);
        }
    brainsam::VolumeGeometry geometry;
    geometry.dims = {ni, nj, nk};
    geometry.spacing = {2.0, 2.0, 2.0};
    geometry.origin = {-80.0, -96.0, -80.0};
    geometry.direction = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    geometry.coordinates = brainsam::Coordinates::Ras;
    session->set_volume(geometry, rust::Slice<const float>(voxels.data(), voxels.size()));

    // 3. Automatic segmentation with progress (return false to cancel).
    session->segment_all(brainsam::ProgressCallback([](std::uint64_t done, std::uint64_t total) {
      std::cout << "segment_all: " << done << "/" << total << " slices\n";
      return true;
    }));
    for (std::uint32_t structure = 1; structure < BRAINSAM_NUM_CLASSES; structure++) {
      const brainsam::StructureStats stats = session->structure_stats(structure);
      std::cout << "structure " << structure << ": " << stats.volume_mm3 << " mm3, confidence "
                << stats.confidence << "\n";
    }

    // 4. Refine the left putamen (5) on the middle slice of the region of interest.
    const std::uint32_t axis = session->slicing_axis();
    const brainsam::SliceRange range = session->slice_range();
    const std::uint64_t slice = (range.first + range.last) / 2;
    std::array<double, 3> point = {30.0, 40.0, 40.0};
    point[axis] = static_cast<double>(slice);
    session->add_point(5, point, true);
    const std::uint64_t changed = session->segment_structure(5, slice);
    std::cout << "prompt changed " << changed << " voxels\n";

    // Errors are exceptions naming the problem; the session stays usable.
    try {
      session->add_point(13, point, true);
    } catch (const rust::Error& error) {
      std::cout << "expected error: " << error.what() << "\n";
    }

    // 5. The label map, in the input's voxel order.
    const rust::Vec<std::uint8_t> labels = session->labels();
    std::size_t foreground = 0;
    for (const std::uint8_t label : labels) foreground += label != 0;
    std::cout << foreground << " of " << labels.size() << " voxels labelled\n";
  } catch (const rust::Error& error) {
    std::cerr << "BrainSAM error: " << error.what() << "\n";
    return 1;
  }
  std::cout << "example c++: ok\n";
  return 0;
}
