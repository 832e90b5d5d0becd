"""ROS 2 nodes: one file, one Node subclass and one ``main()`` each (DESIGN.md section 2)."""
