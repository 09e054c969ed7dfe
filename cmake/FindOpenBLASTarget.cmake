# Debian's OpenBLAS config file sets variables but no imported target; wrap them in one.
if(NOT TARGET spear_openblas)
  find_package(OpenBLAS CONFIG REQUIRED)
  add_library(spear_openblas INTERFACE IMPORTED)
  set_target_properties(spear_openblas PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${OpenBLAS_INCLUDE_DIRS}"
    INTERFACE_LINK_LIBRARIES "${OpenBLAS_LIBRARIES}")
endif()
