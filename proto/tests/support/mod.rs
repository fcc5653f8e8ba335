pub mod descriptor_diff;
